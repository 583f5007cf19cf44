// Command labimage makes an OCI image from static binaries without a
// container engine and pushes it to the Knative lab's registry on
// 127.0.0.1. It prints the reference it pushed, tag and digest:
//
//	labimage -ref 127.0.0.1:15000/knative/activator:v1.21.3 -bin activator=/path/activator
//
// The first -bin is the entrypoint; binaries land in /ko-app as ko puts
// them, so Knative's manifests (which name no command) run them unchanged.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	var bins, envs list
	ref := flag.String("ref", "", "image reference to push (registry on 127.0.0.1 only)")
	user := flag.String("user", "65532", "numeric user the image runs as")
	digestOnly := flag.Bool("digest", false, "print REPO@DIGEST instead of REF@DIGEST")
	flag.Var(&bins, "bin", "NAME=PATH of a static binary to put at /ko-app/NAME (repeatable; the first is the entrypoint)")
	flag.Var(&envs, "env", "KEY=VALUE for the image config (repeatable)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("labimage: ")
	if *ref == "" || len(bins) == 0 {
		log.Fatal("-ref and at least one -bin are required")
	}
	tag, err := name.NewTag(*ref, name.Insecure)
	if err != nil {
		log.Fatalf("-ref %q: %v", *ref, err)
	}
	host, _, err := net.SplitHostPort(tag.RegistryStr())
	if err != nil || net.ParseIP(host) == nil || !net.ParseIP(host).IsLoopback() {
		log.Fatalf("-ref %q: the registry must be an address on 127.0.0.1 with a port", *ref)
	}
	layer, entry, err := binLayer(bins)
	if err != nil {
		log.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		log.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		log.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.Entrypoint = []string{entry}
	cf.Config.User = *user
	cf.Config.WorkingDir = "/"
	cf.Config.Env = append([]string{"PATH=/ko-app:/usr/bin:/bin", "KO_DATA_PATH=/var/run/ko"}, envs...)
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		log.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		log.Fatalf("push %s: %v", tag, err)
	}
	d, err := img.Digest()
	if err != nil {
		log.Fatal(err)
	}
	if *digestOnly {
		fmt.Printf("%s@%s\n", tag.Context(), d)
		return
	}
	fmt.Printf("%s@%s\n", tag, d)
}

// binLayer builds one layer: /ko-app/NAME for each binary, an empty
// /var/run/ko (Knative reads KO_DATA_PATH) and a sticky /tmp.
func binLayer(bins []string) (v1.Layer, string, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, d := range []struct {
		name string
		mode int64
	}{{"ko-app/", 0o755}, {"var/", 0o755}, {"var/run/", 0o755}, {"var/run/ko/", 0o755}, {"tmp/", 0o1777}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode, ModTime: epoch}); err != nil {
			return nil, "", err
		}
	}
	entry := ""
	for _, b := range bins {
		n, path, ok := strings.Cut(b, "=")
		if !ok || n == "" || strings.Contains(n, "/") {
			return nil, "", fmt.Errorf("-bin %q: want NAME=PATH", b)
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, "", fmt.Errorf("-bin %s: %w", n, err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, "", err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "ko-app/" + n, Mode: 0o755, Size: st.Size(), ModTime: epoch}); err != nil {
			f.Close()
			return nil, "", err
		}
		_, err = io.Copy(tw, f)
		f.Close()
		if err != nil {
			return nil, "", fmt.Errorf("-bin %s: %w", n, err)
		}
		if entry == "" {
			entry = "/ko-app/" + n
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	return l, entry, err
}
