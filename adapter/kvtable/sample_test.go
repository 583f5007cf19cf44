package kvtable

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// TestSampleUploadsAcrossReplicas runs samples/lua/uploads.lua in two
// processes sharing the table: when both take an upload of the same new key
// at once, exactly one routes it as the first; the bucket's count is exact.
func TestSampleUploadsAcrossReplicas(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "samples", "lua", "uploads.lua"))
	if err != nil {
		t.Fatal(err)
	}
	s := testutil.NATS(t)
	engines := []*lua.Engine{
		newEngine(t, string(src), newTable(t, connect(t, s.ClientURL()), "uploads")),
		newEngine(t, string(src), newTable(t, connect(t, s.ClientURL()), "uploads")),
	}
	const keys = 200
	routes := make([][2]string, keys)
	var wg sync.WaitGroup
	for k := range keys {
		for i, e := range engines {
			wg.Go(func() {
				outs, err := e.Transform(context.Background(), newEvent(fmt.Sprint(i, "-", k), "photos", fmt.Sprintf("img %d.jpg", k)))
				if err != nil || len(outs) != 1 {
					t.Errorf("key %d on %d: %v, %+v", k, i, err, outs)
					return
				}
				routes[k][i] = outs[0].Subject
			})
		}
	}
	wg.Wait()
	firsts := map[string]int{}
	for k, r := range routes {
		firsts[r[0]]++
		firsts[r[1]]++
		if n := strings.Count(r[0]+r[1], ".first"); n != 1 || !strings.Contains(r[0]+r[1], ".again") {
			t.Errorf("key %d routed to %v: want one first and one again", k, r)
		}
	}
	t.Logf("routes: %v", firsts)
	outs, err := engines[0].Transform(context.Background(), newEvent("last", "photos", "img 0.jpg"))
	if err != nil || outs[0].Event.Extensions()["uploads"] != int32(2*keys+1) {
		t.Errorf("count after %d uploads: %v (%v)", 2*keys+1, outs, err)
	}
}
