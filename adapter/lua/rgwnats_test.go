package lua

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/subject"
)

func TestHelpers(t *testing.T) {
	var logs logBuffer
	e := newEngine(t, `
		local rn = require("rgwnats")
		function transform(ev)
		  -- json
		  local v = rn.json.decode('{"a":[],"b":null,"n":3,"s":"x"}')
		  assert(v.b == rn.json.null and v.n == 3 and #v.a == 0)
		  assert(rn.json.encode(v) == '{"a":[],"b":null,"n":3,"s":"x"}', rn.json.encode(v))
		  assert(rn.json.encode(rn.json.array()) == "[]" and rn.json.encode({}) == "{}")
		  assert(rn.json.encode(rn.json.array({1, 2})) == "[1,2]")
		  assert(tostring(rn.json.null) == "null")
		  assert(not pcall(rn.json.decode, "{"))
		  -- hashes
		  assert(rn.sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
		  assert(rn.hmac_sha256("The quick brown fox jumps over the lazy dog") ==
		    "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
		  -- base64
		  assert(rn.base64_encode("hello\0") == "aGVsbG8A")
		  assert(rn.base64_decode("aGVsbG8A") == "hello\0")
		  local bad, err = rn.base64_decode("!!")
		  assert(bad == nil and err:find("illegal"))
		  -- time
		  assert(rn.unix("2020-01-01T00:00:00Z") == 1577836800)
		  assert(rn.unix("2020-01-01T00:00:00.5Z") == 1577836800.5)
		  assert(rn.unix("yesterday") == nil)
		  assert(math.abs(rn.unix() - os.time()) < 5)
		  assert(math.abs(rn.unix(rn.now()) - os.time()) < 5)
		  -- subject tokens
		  ev.ext.token = rn.token("odd dir/ünïcode.txt")
		  assert(rn.token("") == "_")
		  -- logging
		  rn.log.info("from the script", {bucket = ev.ext.bucket, n = 2})
		  rn.log.warn("pairs", "k", "v", "x", 1.5)
		  rn.log.debug("debug line")
		  rn.log.error("error line")
		  print("printed", 1, nil)
		  -- JSON modules of RGW scripts
		  local lunajson, cjson = require("lunajson"), require("cjson")
		  assert(lunajson.decode('{"a":null}').a == nil)
		  assert(lunajson.decode('[null]', 1, "NULL")[1] == "NULL")
		  assert(cjson.decode('{"a":null}').a == cjson.null)
		  assert(lunajson.encode({x = {1, 2}}) == '{"x":[1,2]}' and cjson.encode({1}) == "[1]")
		  return ev
		end`, WithHMACKey([]byte("key")), WithLogger(newLogger(&logs)))
	in := fixture(t, "pacific-16.2.15/put-special-key.json", cloudevent.Options{})
	ev := one(t, transformOne(t, e, in))
	if got, want := ev.Extensions()["token"], subject.Token("odd dir/ünïcode.txt"); got != want {
		t.Errorf("token %v, want %s", got, want)
	}
	s := logs.String()
	for _, want := range []string{
		`level=INFO msg="from the script" bucket=nb-main n=2 script=script.lua event=` + in.ID(),
		`level=WARN msg=pairs k=v x=1.5 script=script.lua`,
		`level=DEBUG msg="debug line"`,
		`level=ERROR msg="error line"`,
		`level=INFO msg="printed\t1\tnil" script=script.lua`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("log lacks %q:\n%s", want, s)
		}
	}
}

// Without a configured key, pseudonyms must not silently become unkeyed.
func TestHMACNeedsAKey(t *testing.T) {
	e := newEngine(t, `function transform(ev) ev.ext.h = require("rgwnats").hmac_sha256("x") return ev end`)
	_, err := e.Transform(context.Background(), fixture(t, "reef-put-capture.json", cloudevent.Options{}))
	if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), "LUA_HMAC_KEY") {
		t.Fatalf("error %v", err)
	}
}

func TestWithHMACKeyCopiesTheKey(t *testing.T) {
	key := []byte("key")
	e := newEngine(t, `function transform(ev) ev.ext.h = require("rgwnats").hmac_sha256("x") return ev end`, WithHMACKey(key))
	key[0] = 'X'
	h := one(t, transformOne(t, e, fixture(t, "reef-put-capture.json", cloudevent.Options{}))).Extensions()["h"]
	m := hmac.New(sha256.New, []byte("key"))
	m.Write([]byte("x"))
	if want := hex.EncodeToString(m.Sum(nil)); h != want {
		t.Errorf("hmac %v, want %s: the engine uses the caller's slice, not a copy", h, want)
	}
}

// The state's HMAC is reused: each message, short or longer than the
// scratch it keeps, in any order and over several events, hashes alone.
func TestHMACReusedPerState(t *testing.T) {
	long := strings.Repeat("x", maxHMACScratch+1)
	e := newEngine(t, `local rn = require("rgwnats")
function transform(ev)
  ev.ext.a = rn.hmac_sha256("a")
  ev.ext.long = rn.hmac_sha256(string.rep("x", `+fmt.Sprint(len(long))+`))
  ev.ext.b = rn.hmac_sha256("a") == ev.ext.a and rn.hmac_sha256("")
  return ev
end`, WithHMACKey([]byte("key")), WithPoolSize(1), WithMaxStates(1))
	want := func(s string) string {
		m := hmac.New(sha256.New, []byte("key"))
		m.Write([]byte(s))
		return hex.EncodeToString(m.Sum(nil))
	}
	for range 3 {
		ext := one(t, transformOne(t, e, fixture(t, "reef-put-capture.json", cloudevent.Options{}))).Extensions()
		if ext["a"] != want("a") || ext["long"] != want(long) || ext["b"] != want("") {
			t.Fatalf("hmacs %v", ext)
		}
	}
}
