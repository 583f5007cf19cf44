package lua

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/cloudevents/sdk-go/v2/types"
	glua "github.com/yuin/gopher-lua"

	"github.com/rgw-nats/rgw-nats/adapter/subject"
)

const (
	levelDebug = slog.LevelDebug
	levelInfo  = slog.LevelInfo
	levelWarn  = slog.LevelWarn
	levelError = slog.LevelError
)

// initModules builds the modules require knows: rgwnats (the helpers),
// lunajson and cjson (RGW scripts' JSON); nats is added by initRGW.
func (st *state) initModules() {
	L := st.L
	st.modules = make(map[string]glua.LValue, 4)
	fn := func(f glua.LGFunction) glua.LValue { return L.NewFunction(f) }

	encode := fn(func(L *glua.LState) int {
		b, err := st.json.encodeMax(L.CheckAny(1), st.maxString(), &st.deadline.expired)
		if errors.Is(err, errLimitHit) {
			st.tooLong(L, "json.encode", len(b))
		}
		if err != nil {
			L.RaiseError("%s", err.Error())
		}
		L.Push(glua.LString(b))
		return 1
	})
	decodeWith := func(null func(L *glua.LState) glua.LValue) glua.LValue {
		return fn(func(L *glua.LState) int {
			v, err := st.json.decode([]byte(L.CheckString(1)), null(L))
			if err != nil {
				L.RaiseError("%s", err.Error())
			}
			L.Push(v)
			return 1
		})
	}
	decode := decodeWith(func(*glua.LState) glua.LValue { return st.null })
	jsonMod := st.readOnly("rgwnats.json", st.fields(map[string]glua.LValue{
		"encode": encode,
		"decode": decode,
		"null":   st.null,
		"array": fn(func(L *glua.LState) int {
			t, ok := L.Get(1).(*glua.LTable)
			if !ok {
				t = L.NewTable()
			}
			t.Metatable = st.arrayMT
			L.Push(t)
			return 1
		}),
	}))
	logFn := func(level slog.Level) glua.LValue {
		return fn(func(L *glua.LState) int {
			st.log(L, level, L.CheckString(1), logAttrs(L, 2))
			return 0
		})
	}
	st.modules["rgwnats"] = st.readOnly("rgwnats", st.fields(map[string]glua.LValue{
		"json": jsonMod,
		"sha256": fn(func(L *glua.LState) int {
			sum := sha256.Sum256([]byte(L.CheckString(1)))
			L.Push(glua.LString(hex.EncodeToString(sum[:])))
			return 1
		}),
		"hmac_sha256": fn(st.hmacSHA256),
		"base64_encode": fn(func(L *glua.LState) int {
			L.Push(glua.LString(base64.StdEncoding.EncodeToString([]byte(L.CheckString(1)))))
			return 1
		}),
		"base64_decode": fn(func(L *glua.LState) int {
			b, err := base64.StdEncoding.DecodeString(L.CheckString(1))
			if err != nil {
				L.Push(glua.LNil)
				L.Push(glua.LString(err.Error()))
				return 2
			}
			L.Push(glua.LString(b))
			return 1
		}),
		"now": fn(func(L *glua.LState) int {
			L.Push(glua.LString(types.FormatTime(time.Now())))
			return 1
		}),
		"unix": fn(func(L *glua.LState) int {
			t := time.Now()
			if L.GetTop() >= 1 {
				var err error
				if t, err = types.ParseTime(L.CheckString(1)); err != nil {
					L.Push(glua.LNil)
					L.Push(glua.LString(err.Error()))
					return 2
				}
			}
			L.Push(glua.LNumber(float64(t.UnixNano()) / 1e9))
			return 1
		}),
		"token": fn(func(L *glua.LState) int {
			L.Push(glua.LString(subject.Token(L.CheckString(1))))
			return 1
		}),
		"publish": fn(st.rnPublish),
		"log": st.readOnly("rgwnats.log", st.fields(map[string]glua.LValue{
			"debug": logFn(levelDebug),
			"info":  logFn(levelInfo),
			"warn":  logFn(levelWarn),
			"error": logFn(levelError),
		})),
	}))

	// lunajson.decode(text [, pos [, nullv]]): null becomes nullv (nil by
	// default, as in lunajson); cjson.decode gives cjson.null.
	st.modules["lunajson"] = st.readOnly("lunajson", st.fields(map[string]glua.LValue{
		"encode": encode,
		"decode": decodeWith(func(L *glua.LState) glua.LValue { return L.Get(3) }),
	}))
	st.modules["cjson"] = st.readOnly("cjson", st.fields(map[string]glua.LValue{
		"encode": encode,
		"decode": decode,
		"null":   st.null,
	}))
}

func (st *state) hmacSHA256(L *glua.LState) int {
	key := st.s.eng.cfg.hmacKey
	if len(key) == 0 {
		L.RaiseError("rgwnats.hmac_sha256: no key configured (set LUA_HMAC_KEY)")
	}
	msg := L.CheckString(1)
	// One keyed HMAC per state, reset per use: hmac.New hashes the key and
	// allocates two digests, which is most of the cost for short ids.
	h := &st.hmac
	if h.mac == nil {
		h.mac = hmac.New(sha256.New, key)
	} else {
		h.mac.Reset()
	}
	if len(msg) <= maxHMACScratch {
		h.in = append(h.in[:0], msg...)
		h.mac.Write(h.in)
	} else {
		h.mac.Write([]byte(msg))
	}
	var hexSum [2 * sha256.Size]byte
	hex.Encode(hexSum[:], h.mac.Sum(h.sum[:0]))
	L.Push(glua.LString(hexSum[:]))
	return 1
}

// hmacState is the reusable HMAC of a state (rgwnats.hmac_sha256).
type hmacState struct {
	mac hash.Hash
	in  []byte // scratch copy of the message
	sum [sha256.Size]byte
}

// maxHMACScratch bounds the message copy a state keeps for reuse.
const maxHMACScratch = 4 << 10

// rnPublish is rgwnats.publish(subject, payload [, header]): a string payload
// goes out as is, anything else as JSON.
func (st *state) rnPublish(L *glua.LState) int {
	subj := L.CheckString(1)
	if st.cur == nil {
		L.RaiseError("publish: only possible while an event is processed, not when the script loads")
	}
	var payload []byte
	switch v := L.CheckAny(2).(type) {
	case glua.LString:
		payload = []byte(v)
	default:
		b, err := st.json.encodeMax(v, st.bytesLeft(), &st.deadline.expired)
		if errors.Is(err, errLimitHit) {
			st.charge(L, 0, len(b))
		}
		if err != nil {
			L.RaiseError("rgwnats.publish: %s", err.Error())
		}
		payload = slices.Clone(b)
	}
	var header map[string][]string
	if t, ok := L.Get(3).(*glua.LTable); ok {
		var err error
		if header, err = headerMap(t, st.bytesLeft()-len(payload)); errors.Is(err, errLimitHit) {
			st.charge(L, 0, st.bytesLeft()+1)
		}
		if err != nil {
			L.RaiseError("rgwnats.publish: %s", err.Error())
		}
	}
	st.publish(L, subj, payload, header)
	return 0
}

// logAttrs reads log attributes from argument n on: a table of fields, or
// key, value pairs.
func logAttrs(L *glua.LState, n int) []any {
	top := L.GetTop()
	if top < n {
		return nil
	}
	if t, ok := L.Get(n).(*glua.LTable); ok && top == n {
		fields := make(map[string]glua.LValue)
		for k, v := t.Next(glua.LNil); k != glua.LNil; k, v = t.Next(k) {
			fields[k.String()] = v
		}
		attrs := make([]any, 0, 2*len(fields))
		for _, k := range slices.Sorted(maps.Keys(fields)) {
			attrs = append(attrs, k, logValue(L, fields[k]))
		}
		return attrs
	}
	attrs := make([]any, 0, top-n+1)
	for i := n; i <= top; i += 2 {
		attrs = append(attrs, L.ToStringMeta(L.Get(i)).String(), logValue(L, L.Get(i+1)))
	}
	return attrs
}

func logValue(L *glua.LState, v glua.LValue) any {
	switch v := v.(type) {
	case glua.LString:
		return string(v)
	case glua.LBool:
		return bool(v)
	case glua.LNumber:
		if f := float64(v); f == float64(int64(f)) {
			return int64(f)
		}
		return float64(v)
	}
	return L.ToStringMeta(v).String()
}

// log writes one line through the engine's logger, naming the script and
// the event.
func (st *state) log(L *glua.LState, level slog.Level, msg string, attrs []any) {
	logger := st.s.eng.cfg.logger
	ctx := context.Background()
	id := ""
	if st.cur != nil {
		ctx, id = st.cur.ctx, st.cur.id
	}
	if !logger.Enabled(ctx, level) {
		return
	}
	attrs = append(attrs, "script", st.s.name)
	if id != "" {
		attrs = append(attrs, "event", id)
	}
	logger.Log(ctx, level, msg, attrs...)
}
