//go:build !nonatsserver

package natsout

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestEmbedded(t *testing.T) {
	for _, keepStore := range []bool{false, true} {
		t.Run(fmt.Sprintf("store given %v", keepStore), func(t *testing.T) {
			store := ""
			if keepStore {
				store = t.TempDir()
			}
			e, err := StartEmbedded("127.0.0.1:0", store)
			if err != nil {
				t.Fatal(err)
			}
			tempDir := e.tempDir
			p := connect(t, jsConfig(e.URL()))
			waitReady(t, p)
			noErrors(t, p.Publish(context.Background(), []Message{encode(t, "emb-1", "rgw.a.b", Structured)}))
			if n := streamMsgs(t, e.URL(), "RGW"); n != 1 {
				t.Errorf("stream holds %d", n)
			}
			if err := p.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
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
		if e, err := StartEmbedded(listen, ""); err == nil {
			e.Shutdown()
			t.Errorf("StartEmbedded(%q) succeeded", listen)
		}
	}
	e, err := StartEmbedded("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	port := e.Server().Addr().String()
	if e2, err := StartEmbedded(port, ""); err == nil {
		e2.Shutdown()
		t.Errorf("second server on %s started", port)
	}
}
