package lua_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/rgw-nats/rgw-nats/adapter/lua"
)

// A script that fans one event out past LUA_MAX_OUTPUTS fails at the clone
// one too many, with an error the pipeline treats as permanent.
func ExampleWithMaxOutputs() {
	path, cleanup := scriptFile(`
function transform(ev)
  local copies = {}
  for i = 1, 20000 do copies[i] = ev:clone() end
  return copies
end`)
	defer cleanup()

	e, err := lua.New(context.Background(), path, lua.WithTimeout(time.Second), lua.WithReload(0),
		lua.WithMaxOutputs(10))
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()

	_, err = e.Transform(context.Background(), sampleEvent("reef-put-capture.json"))
	fmt.Println(errors.Is(err, lua.ErrLimit), errors.Is(err, lua.ErrTimeout))
	var se *lua.ScriptError
	if errors.As(err, &se) {
		fmt.Printf("line %d: %s\n", se.Line, se.Msg)
	}
	// Output:
	// true false
	// line 4: 11 outputs exceed the limit of 10 (LUA_MAX_OUTPUTS)
}
