package binding

import "github.com/rgw-nats/rgw-nats/internal/testutil"

var rgwEvent = testutil.RGWEvent
