//go:build !nonatsserver

package embedded

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestEmbedded(t *testing.T) {
	for _, keepStore := range []bool{false, true} {
		t.Run(fmt.Sprintf("store given %v", keepStore), func(t *testing.T) {
			store := ""
			if keepStore {
				store = t.TempDir()
			}
			e, err := Start("127.0.0.1:0", store)
			if err != nil {
				t.Fatal(err)
			}
			tempDir := e.tempDir
			nc, err := nats.Connect(e.URL())
			if err != nil {
				t.Fatal(err)
			}
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RGW", Subjects: []string{"rgw.>"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(ctx, "rgw.a.b", []byte("{}")); err != nil {
				t.Fatal(err)
			}
			nc.Close()
			e.Shutdown()
			if keepStore {
				if _, err := os.Stat(filepath.Join(store, "jetstream")); err != nil {
					t.Errorf("store not in the given dir: %v", err)
				}
			} else if _, err := os.Stat(tempDir); !os.IsNotExist(err) {
				t.Errorf("temporary store %s left behind: %v", tempDir, err)
			}
		})
	}
}

func TestEmbeddedBadAddress(t *testing.T) {
	for _, listen := range []string{"nohostport", "127.0.0.1:notaport", "127.0.0.1:70000"} {
		if e, err := Start(listen, ""); err == nil {
			e.Shutdown()
			t.Errorf("Start(%q) succeeded", listen)
		}
	}
	e, err := Start("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	port := e.srv.Addr().String()
	if e2, err := Start(port, ""); err == nil {
		e2.Shutdown()
		t.Errorf("second server on %s started", port)
	}
}
