package adapter

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/ingress"
	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
)

// TestClassify: the one table, as the parts wrap their sentinels.
func TestClassify(t *testing.T) {
	timedOut := &lua.ScriptError{Script: "s.lua", Msg: "deadline", Timeout: true}
	for _, c := range []struct {
		err    error
		class  Class
		reason Reason
	}{
		{fmt.Errorf("x: %w", ingress.ErrInvalid), Permanent, ReasonDecode},
		{fmt.Errorf("x: %w", ingress.ErrUnsupported), Permanent, ReasonUnsupported},
		{&lua.ScriptError{Script: "s.lua", Msg: "boom"}, Permanent, ReasonScript},
		{fmt.Errorf("event e: %w", timedOut), Transient, ReasonTimeout},
		{fmt.Errorf("x: %w", lua.ErrLimit), Permanent, ReasonLimit},
		{fmt.Errorf("x: %w", lua.ErrBusy), Transient, ReasonBusy},
		{fmt.Errorf("x: %w", lua.ErrTableUnavailable), Transient, ReasonTable},
		{fmt.Errorf("x: %w", lua.ErrTableFull), Permanent, ReasonLimit},
		{fmt.Errorf("x: %w", lua.ErrMemory), Transient, ReasonMemory},
		{&lua.ScriptError{Script: "s.lua", Msg: "heap", Memory: true}, Transient, ReasonMemory},
		{lua.ErrClosed, Transient, ReasonShutdown},
		{fmt.Errorf("x: %w", ErrLimit), Permanent, ReasonLimit},
		{fmt.Errorf("x: %w", ErrOutput), Permanent, ReasonOutput},
		{fmt.Errorf("x: %w", binding.ErrRejected), Permanent, ReasonOutput},
		{fmt.Errorf("x: %w", natsout.ErrNoStream), Permanent, ReasonNoStream},
		{fmt.Errorf("x: %w", natsout.ErrDenied), Permanent, ReasonDenied},
		{fmt.Errorf("x: %w", natsout.ErrUnavailable), Transient, ReasonNATS},
		{context.Canceled, Transient, ReasonShutdown},
		{context.DeadlineExceeded, Transient, ReasonTimeout},
		{errors.New("nobody classified this"), Transient, ReasonNATS},
	} {
		if class, reason := classify(c.err); class != c.class || reason != c.reason {
			t.Errorf("classify(%v) = %v %s, want %v %s", c.err, class, reason, c.class, c.reason)
		}
	}
}
