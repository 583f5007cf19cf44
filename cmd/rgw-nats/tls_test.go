package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// writePair writes a fresh self-signed certificate for 127.0.0.1 with the
// given serial, and its key, to dir; it returns the two paths.
func writePair(t *testing.T, dir string, serial int64) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "rgw-nats test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	// Written to new files and renamed over the old ones, as a Secret
	// rotation swaps files: each handshake sees either pair whole.
	for path, block := range map[string]*pem.Block{
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		tmp := path + ".new"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

// serveTLS serves a trivial handler over tlsListener on a real port.
func serveTLS(t *testing.T, certFile, keyFile string, log *slog.Logger) string {
	t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tlsListener(tcp, certFile, keyFile, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	}), ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return tcp.Addr().String()
}

// serialOf connects with a fresh TLS client and returns the server's serial.
func serialOf(t *testing.T, addr string) int64 {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestTLSReload: the listener serves the pair it started with, serves a
// rotated pair once the files change, keeps serving the old pair while the
// new files do not load, and never offers less than TLS 1.2.
func TestTLSReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writePair(t, dir, 1)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	addr := serveTLS(t, certFile, keyFile, log)

	if got := serialOf(t, addr); got != 1 {
		t.Fatalf("serial %d, want 1", got)
	}
	writePair(t, dir, 2)
	waitSerial(t, addr, 2)
	if !strings.Contains(logs.String(), "TLS certificate reloaded") {
		t.Errorf("no reload logged:\n%s", logs.String())
	}

	// A key that does not match the certificate: the old pair stays.
	_, otherKey := writePair(t, t.TempDir(), 3)
	b, err := os.ReadFile(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "not reloaded"); {
		if time.Now().After(deadline) {
			t.Fatalf("a broken pair was not reported:\n%s", logs.String())
		}
		if got := serialOf(t, addr); got != 2 {
			t.Fatalf("serial %d while the new pair is broken, want 2 still", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := strings.Count(logs.String(), "not reloaded"); n != 1 {
		t.Errorf("a broken pair was reported %d times, want once", n)
	}
	writePair(t, dir, 4)
	waitSerial(t, addr, 4)

	// TLS 1.1 is refused; HTTPS over HTTP/1.1 reaches the handler.
	if c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}).Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" || resp.ProtoMajor != 1 {
		t.Errorf("HTTPS GET: %s %q", resp.Proto, body)
	}
}

// waitSerial waits until a new connection sees the wanted serial: a change
// is noticed within certCheckInterval.
func waitSerial(t *testing.T, addr string, want int64) {
	t.Helper()
	deadline := time.Now().Add(certCheckInterval + 5*time.Second)
	for {
		got := serialOf(t, addr)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("serial %d, want %d after the files changed", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCertReloaderReadsOnlyOnChange: handshakes within the check interval
// touch no file at all, and after it one stat per file and no read while
// the files stay the same (a removed file proves it: the cached pair is
// served without noticing until the interval has passed).
func TestCertReloaderReadsOnlyOnChange(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writePair(t, dir, 1)
	r, err := newCertReloader(certFile, keyFile, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Now()
	r.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	first, _ := r.GetCertificate(nil)
	os.Remove(certFile)
	os.Remove(keyFile)
	for range 100 {
		if c, err := r.GetCertificate(nil); err != nil || c != first {
			t.Fatal("the cached certificate changed without a file change")
		}
	}
	// Past the interval: the files are gone, the old pair keeps serving.
	mu.Lock()
	now = now.Add(2 * certCheckInterval)
	mu.Unlock()
	if c, err := r.GetCertificate(nil); err != nil || c != first {
		t.Fatal("a vanished pair replaced the certificate in service")
	}
	// Same files again (same content, new inode): loaded once, then cached.
	writePair(t, dir, 5)
	mu.Lock()
	now = now.Add(2 * certCheckInterval)
	mu.Unlock()
	c, _ := r.GetCertificate(nil)
	if c == first || mustParse(t, c).SerialNumber.Int64() != 5 {
		t.Fatal("the rotated pair was not loaded")
	}
	if again, _ := r.GetCertificate(nil); again != c {
		t.Fatal("an unchanged pair was loaded again")
	}
}

func mustParse(t *testing.T, c *tls.Certificate) *x509.Certificate {
	t.Helper()
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestTLSListenerConfig: neither file means plain HTTP; one alone or a
// missing file is an error at start, before anything is served.
func TestTLSListenerConfig(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	if ln, err := tlsListener(tcp, "", "", log); err != nil || ln != tcp {
		t.Errorf("no files: %v, %T", ln, err)
	}
	if _, err := tlsListener(tcp, "a.crt", "", log); !errors.Is(err, errTLSPair) {
		t.Errorf("cert alone: %v", err)
	}
	if _, err := tlsListener(tcp, "", "a.key", log); !errors.Is(err, errTLSPair) {
		t.Errorf("key alone: %v", err)
	}
	if _, err := tlsListener(tcp, "/nonexistent.crt", "/nonexistent.key", log); err == nil {
		t.Error("missing files accepted")
	}
}
