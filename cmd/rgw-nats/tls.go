package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// certCheckInterval bounds how often a handshake looks at the files: a
// rotation is noticed within a second, and a burst of handshakes costs one
// pair of stat calls, no file read, while the files stay the same.
const certCheckInterval = time.Second

// certReloader hands out the certificate of a PEM cert/key pair and loads
// the pair again when either file changes. Kubernetes rotates a mounted
// Secret by pointing a symlink at a new directory, so the files are compared
// by what os.Stat resolves to (inode, size, mtime), not by name.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	interval          time.Duration
	now               func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	stamps  [2]os.FileInfo
	checked time.Time
	failed  [2]os.FileInfo // the stamps of the last pair that did not load: warn once
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log, interval: certCheckInterval, now: time.Now}
	stamps, err := r.stat()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	r.cert, r.stamps, r.checked = &cert, stamps, r.now()
	return r, nil
}

func (r *certReloader) stat() ([2]os.FileInfo, error) {
	var st [2]os.FileInfo
	for i, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return st, fmt.Errorf("tls: %w", err)
		}
		st[i] = fi
	}
	return st, nil
}

func sameStamps(a, b [2]os.FileInfo) bool {
	for i := range a {
		if a[i] == nil || b[i] == nil || !os.SameFile(a[i], b[i]) ||
			a[i].Size() != b[i].Size() || !a[i].ModTime().Equal(b[i].ModTime()) {
			return false
		}
	}
	return true
}

// GetCertificate is tls.Config.GetCertificate. A pair that fails to load
// (a rotation caught between writing the certificate and the key) keeps the
// previous certificate in service; the next check tries again.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.Sub(r.checked) < r.interval {
		return r.cert, nil
	}
	r.checked = now
	stamps, err := r.stat()
	if err != nil {
		r.warn(stamps, err)
		return r.cert, nil
	}
	if sameStamps(stamps, r.stamps) {
		return r.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		r.warn(stamps, fmt.Errorf("tls: %w", err))
		return r.cert, nil
	}
	r.cert, r.stamps = &cert, stamps
	r.log.Info("TLS certificate reloaded", "cert", r.certFile)
	return r.cert, nil
}

func (r *certReloader) warn(stamps [2]os.FileInfo, err error) {
	if sameStamps(stamps, r.failed) {
		return
	}
	r.failed = stamps
	r.log.Warn("TLS certificate not reloaded; serving the previous one", "cert", r.certFile, "error", err)
}

// errTLSPair says that only one of the two TLS variables is set.
var errTLSPair = errors.New("configuration: TLS_CERT_FILE and TLS_KEY_FILE go together")

// tlsListener wraps ln in TLS 1.2+ when a certificate is configured, and
// returns ln as it is when neither file is.
func tlsListener(ln net.Listener, certFile, keyFile string, log *slog.Logger) (net.Listener, error) {
	if certFile == "" && keyFile == "" {
		return ln, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errTLSPair
	}
	r, err := newCertReloader(certFile, keyFile, log)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(ln, &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.GetCertificate,
		// RGW speaks HTTP/1.1; a listener wrapped by hand gets no HTTP/2.
		NextProtos: []string{"http/1.1"},
	}), nil
}
