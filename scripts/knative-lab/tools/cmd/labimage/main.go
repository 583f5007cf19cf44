// Command labimage makes an OCI image from static binaries without a
// container engine and pushes it to the Knative lab's registry on
// 127.0.0.1. It prints the reference it pushed, tag and digest:
//
//	labimage -ref 127.0.0.1:15000/knative/activator:v1.21.3 -bin activator=/path/activator
//
// The first -bin is the entrypoint; binaries land in /ko-app as ko puts
// them, so Knative's manifests (which name no command) run them unchanged.
// -file puts a file at any path instead (-entrypoint and -cmd then say what
// runs), for images that must match a Dockerfile's layout.
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
	var bins, files, envs, cmd list
	ref := flag.String("ref", "", "image reference to push (registry on 127.0.0.1 only)")
	user := flag.String("user", "65532", "numeric user the image runs as")
	digestOnly := flag.Bool("digest", false, "print REPO@DIGEST instead of REF@DIGEST")
	flag.Var(&bins, "bin", "NAME=PATH of a static binary to put at /ko-app/NAME (repeatable; the first is the entrypoint)")
	flag.Var(&files, "file", "DEST=PATH: put the file PATH at DEST in the image, mode kept (repeatable)")
	flag.Var(&envs, "env", "KEY=VALUE for the image config (repeatable)")
	flag.Var(&cmd, "cmd", "an argument of the image's Cmd (repeatable)")
	entrypoint := flag.String("entrypoint", "", "the image's Entrypoint (default: the first -bin)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("labimage: ")
	if *ref == "" || len(bins)+len(files) == 0 {
		log.Fatal("-ref and at least one -bin or -file are required")
	}
	tag, err := name.NewTag(*ref, name.Insecure)
	if err != nil {
		log.Fatalf("-ref %q: %v", *ref, err)
	}
	host, _, err := net.SplitHostPort(tag.RegistryStr())
	if err != nil || net.ParseIP(host) == nil || !net.ParseIP(host).IsLoopback() {
		log.Fatalf("-ref %q: the registry must be an address on 127.0.0.1 with a port", *ref)
	}
	layer, entry, err := binLayer(bins, files)
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
	if *entrypoint != "" {
		entry = *entrypoint
	}
	if entry == "" {
		log.Fatal("no -entrypoint and no -bin to run")
	}
	cf.Config.Entrypoint = []string{entry}
	cf.Config.Cmd = cmd
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

// binLayer builds one layer: /ko-app/NAME for each binary, the -file files
// with their parent directories, an empty /var/run/ko (Knative reads
// KO_DATA_PATH) and a sticky /tmp.
func binLayer(bins, files []string) (v1.Layer, string, error) {
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
	dirs := map[string]bool{"ko-app/": true, "var/": true, "var/run/": true, "var/run/ko/": true, "tmp/": true}
	for _, fl := range files {
		dest, path, ok := strings.Cut(fl, "=")
		dest = strings.TrimPrefix(dest, "/")
		if !ok || dest == "" || strings.HasSuffix(dest, "/") || strings.Contains("/"+dest+"/", "/../") {
			return nil, "", fmt.Errorf("-file %q: want DEST=PATH", fl)
		}
		for i := strings.Index(dest, "/"); i >= 0; i = next(dest, i) {
			d := dest[:i+1]
			if !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
					return nil, "", err
				}
			}
		}
		if err := addFile(tw, dest, path, -1, epoch); err != nil {
			return nil, "", fmt.Errorf("-file %s: %w", dest, err)
		}
	}
	entry := ""
	for _, b := range bins {
		n, path, ok := strings.Cut(b, "=")
		if !ok || n == "" || strings.Contains(n, "/") {
			return nil, "", fmt.Errorf("-bin %q: want NAME=PATH", b)
		}
		if err := addFile(tw, "ko-app/"+n, path, 0o755, epoch); err != nil {
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

// next is the index of the next "/" in s after i, or -1.
func next(s string, i int) int {
	j := strings.Index(s[i+1:], "/")
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// addFile writes the file at path into tw as name, with mode (or, when mode
// is negative, the file's own permission bits).
func addFile(tw *tar.Writer, name, path string, mode int64, mtime time.Time) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if mode < 0 {
		mode = int64(st.Mode().Perm())
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: st.Size(), ModTime: mtime}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}
