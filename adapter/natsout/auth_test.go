package natsout

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// secured is a server set up with one way of authenticating or with TLS,
// and the ways a Publisher may try to get in.
type secured struct {
	server   func(*server.Options)
	observer []nats.Option // how a plain client with valid credentials connects
	clients  []securedClient
}

type securedClient struct {
	name string
	cfg  Config // credentials and TLS files
	// url replaces the server's client URL; a %d in it is the server's port.
	url string
	// refused is empty when the client must get in, else a piece of the
	// error the failed connection attempts are logged with.
	refused string
}

func TestAuthentication(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) secured
	}{
		{"user and password", userPasswordServer},
		{"token", tokenServer},
		{"nkey seed file", nkeyServer},
		{"creds file", credsServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			runSecured(t, tt.setup(t))
		})
	}
}

func TestTLS(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) secured
	}{
		{"server certificate", func(t *testing.T) secured { return tlsServer(t, false) }},
		{"mutual", func(t *testing.T) secured { return tlsServer(t, true) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			runSecured(t, tt.setup(t))
		})
	}
}

const refusedAuth = "authorization violation"

func userPasswordServer(*testing.T) secured {
	return secured{
		server: func(o *server.Options) {
			o.Username, o.Password = "rgw", "s3cr3t"
		},
		observer: []nats.Option{nats.UserInfo("rgw", "s3cr3t")},
		clients: []securedClient{
			{name: "right", cfg: Config{User: "rgw", Password: "s3cr3t"}},
			{name: "wrong password", cfg: Config{User: "rgw", Password: "guess"}, refused: refusedAuth},
			{name: "wrong user", cfg: Config{User: "other", Password: "s3cr3t"}, refused: refusedAuth},
			{name: "no credentials", refused: refusedAuth},
		},
	}
}

func tokenServer(*testing.T) secured {
	return secured{
		server:   func(o *server.Options) { o.Authorization = "t0ken" },
		observer: []nats.Option{nats.Token("t0ken")},
		clients: []securedClient{
			{name: "right", cfg: Config{Token: "t0ken"}},
			{name: "wrong", cfg: Config{Token: "t0ken2"}, refused: refusedAuth},
			{name: "no credentials", refused: refusedAuth},
		},
	}
}

func nkeyServer(t *testing.T) secured {
	dir := t.TempDir()
	pub, seed := newUserNkey(t, dir, "user.nk")
	_, other := newUserNkey(t, dir, "other.nk")
	observer, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return secured{
		server:   func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} },
		observer: []nats.Option{observer},
		clients: []securedClient{
			{name: "right seed", cfg: Config{NkeySeedFile: seed}},
			{name: "other seed", cfg: Config{NkeySeedFile: other}, refused: refusedAuth},
			{name: "no credentials", refused: refusedAuth},
		},
	}
}

// newUserNkey writes the seed of a new user nkey to dir/name.
func newUserNkey(t *testing.T, dir, name string) (pub, seedFile string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err = kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	seedFile = filepath.Join(dir, name)
	writeSecret(t, seedFile, seed)
	return pub, seedFile
}

// credsServer runs in operator mode: an operator signs an account that the
// server's memory resolver knows, the account signs users.
func credsServer(t *testing.T) secured {
	dir := t.TempDir()
	operator := newKey(t, nkeys.CreateOperator)
	oc := jwt.NewOperatorClaims(publicKey(t, operator))
	oc.Name = "rgw-nats test operator"
	ojwt, err := oc.Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	if oc, err = jwt.DecodeOperatorClaims(ojwt); err != nil {
		t.Fatal(err)
	}

	signAccount := func(signer nkeys.KeyPair) (nkeys.KeyPair, string) {
		acc := newKey(t, nkeys.CreateAccount)
		ac := jwt.NewAccountClaims(publicKey(t, acc))
		ac.Name = "RGW"
		ajwt, err := ac.Encode(signer)
		if err != nil {
			t.Fatal(err)
		}
		return acc, ajwt
	}
	account, ajwt := signAccount(operator)
	resolver := &server.MemAccResolver{}
	if err := resolver.Store(publicKey(t, account), ajwt); err != nil {
		t.Fatal(err)
	}
	// Known to nobody: never stored in the resolver.
	stranger, _ := signAccount(operator)

	// creds writes a creds file with the JWT of a user signed by acc and
	// the user's seed, or the seed of swap in its place.
	creds := func(name string, acc, swap nkeys.KeyPair) string {
		user := newKey(t, nkeys.CreateUser)
		uc := jwt.NewUserClaims(publicKey(t, user))
		uc.Name = name
		ujwt, err := uc.Encode(acc)
		if err != nil {
			t.Fatal(err)
		}
		seed, err := user.Seed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := jwt.FormatUserConfig(ujwt, seed)
		if err != nil {
			t.Fatal(err)
		}
		if swap != nil {
			// FormatUserConfig refuses a mismatched pair: swap afterwards.
			other, err := swap.Seed()
			if err != nil {
				t.Fatal(err)
			}
			b = bytes.Replace(b, seed, other, 1)
		}
		path := filepath.Join(dir, name+".creds")
		writeSecret(t, path, b)
		return path
	}
	valid := creds("valid", account, nil)
	return secured{
		server: func(o *server.Options) {
			o.TrustedOperators = []*jwt.OperatorClaims{oc}
			o.AccountResolver = resolver
		},
		observer: []nats.Option{nats.UserCredentials(valid)},
		clients: []securedClient{
			{name: "right", cfg: Config{CredsFile: creds("right", account, nil)}},
			{name: "unknown account", cfg: Config{CredsFile: creds("stranger", stranger, nil)}, refused: refusedAuth},
			{name: "seed of another user", cfg: Config{CredsFile: creds("swapped", account, newKey(t, nkeys.CreateUser))}, refused: refusedAuth},
			{name: "no credentials", refused: refusedAuth},
		},
	}
}

func newKey(t *testing.T, create func() (nkeys.KeyPair, error)) nkeys.KeyPair {
	t.Helper()
	kp, err := create()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func publicKey(t *testing.T, kp nkeys.KeyPair) string {
	t.Helper()
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// tlsServer requires TLS with a certificate from a throwaway CA and, when
// mutual, a client certificate from the same CA.
func tlsServer(t *testing.T, mutual bool) secured {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	serverCert, serverKey := ca.issue(t, dir, "server", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := ca.issue(t, dir, "client", x509.ExtKeyUsageClientAuth)
	rogue := newTestCA(t, dir, "rogue")
	rogueCert, rogueKey := rogue.issue(t, dir, "rogue-client", x509.ExtKeyUsageClientAuth)

	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: serverCert,
		KeyFile:  serverKey,
		CaFile:   ca.file,
		Verify:   mutual,
	})
	if err != nil {
		t.Fatal(err)
	}
	sc := secured{
		server: func(o *server.Options) {
			o.TLSConfig = tc
			o.TLSVerify = mutual
			o.TLSTimeout = 2
		},
		observer: []nats.Option{nats.RootCAs(ca.file)},
	}
	withCert := Config{TLSCA: ca.file, TLSCert: clientCert, TLSKey: clientKey}
	if !mutual {
		sc.clients = []securedClient{
			{name: "our CA, nats URL", cfg: Config{TLSCA: ca.file}},
			{name: "our CA, tls URL", cfg: Config{TLSCA: ca.file}, url: "tls://127.0.0.1:%d"},
			{name: "our CA, host name", cfg: Config{TLSCA: ca.file}, url: "tls://localhost:%d"},
			{name: "our CA and a client certificate", cfg: withCert},
			{name: "system roots", refused: "certificate"},
			{name: "system roots, tls URL", url: "tls://127.0.0.1:%d", refused: "certificate"},
			{name: "another CA", cfg: Config{TLSCA: rogue.file}, refused: "certificate"},
		}
		return sc
	}
	sc.observer = append(sc.observer, nats.ClientCert(clientCert, clientKey))
	sc.clients = []securedClient{
		{name: "client certificate", cfg: withCert},
		{name: "client certificate, tls URL", cfg: withCert, url: "tls://127.0.0.1:%d"},
		// With TLS 1.3 the client learns of the refusal after its side of
		// the handshake, as an alert or as a closed connection.
		{name: "no client certificate", cfg: Config{TLSCA: ca.file}, refused: "tls"},
		// crypto/tls withholds a client certificate whose issuer the
		// server does not ask for: refused as if there were none.
		{name: "client certificate of another CA", cfg: Config{TLSCA: ca.file, TLSCert: rogueCert, TLSKey: rogueKey}, refused: "tls"},
	}
	return sc
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // PEM certificate
}

func newTestCA(t *testing.T, dir, name string) testCA {
	t.Helper()
	key := newECKey(t)
	tmpl := certTemplate(t, name+" test CA")
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name+".pem")
	writePEM(t, file, "CERTIFICATE", der)
	return testCA{cert: cert, key: key, file: file}
}

// issue writes a certificate for 127.0.0.1 and localhost signed by ca, and
// its key.
func (ca testCA) issue(t *testing.T, dir, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key := newECKey(t)
	tmpl := certTemplate(t, name)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	tmpl.DNSNames = []string{"localhost"}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, name+".pem")
	keyFile = filepath.Join(dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", pkcs8)
	return certFile, keyFile
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func certTemplate(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(time.Hour),
	}
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	writeSecret(t, path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}))
}

func writeSecret(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// runSecured starts the server of sc and checks every client against it:
// one that must get in publishes a message that an observer receives; one
// that must not never becomes ready, fails every publish with
// ErrUnavailable, and is refused for the expected reason.
func runSecured(t *testing.T, sc secured) {
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	sc.server(&opts)
	s := natsserver.RunServer(&opts)
	t.Cleanup(s.Shutdown)
	port := s.Addr().(*net.TCPAddr).Port
	observer, err := nats.Connect(s.ClientURL(), sc.observer...)
	if err != nil {
		t.Fatalf("observer: %v", err)
	}
	t.Cleanup(observer.Close)

	for _, c := range sc.clients {
		t.Run(c.name, func(t *testing.T) {
			// Refused clients spend their time waiting: run them together.
			t.Parallel()
			subj := "auth." + strings.ReplaceAll(strings.ReplaceAll(c.name, " ", "_"), ",", "")
			ch := make(chan *nats.Msg, 1)
			sub, err := observer.ChanSubscribe(subj, ch)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			if err := observer.Flush(); err != nil {
				t.Fatal(err)
			}

			cfg := c.cfg
			cfg.URL = s.ClientURL()
			if c.url != "" {
				cfg.URL = fmt.Sprintf(c.url, port)
			}
			cfg.AckTimeout = time.Second
			var logs testutil.Buffer
			cfg.Logger = testutil.LoggerTo(t, &logs)
			p, err := Connect(context.Background(), cfg, WithReconnectWait(50*time.Millisecond))
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer p.Close(context.Background())

			msg := Message{Subject: subj, Data: []byte(c.name), MsgID: "auth-" + subj}
			if c.refused == "" {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := p.WaitReady(ctx); err != nil {
					t.Fatal(err)
				}
				noErrors(t, p.Publish(ctx, []Message{msg}))
				select {
				case got := <-ch:
					if string(got.Data) != c.name {
						t.Errorf("observer got %q, want %q", got.Data, c.name)
					}
				case <-ctx.Done():
					t.Fatal("observer received nothing")
				}
				if opts.TLSConfig != nil {
					if st, err := p.Conn().TLSConnectionState(); err != nil || !st.HandshakeComplete {
						t.Errorf("connection is not TLS: %v", err)
					}
				}
				return
			}

			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := p.WaitReady(ctx); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("WaitReady: %v, want ErrUnavailable after the deadline", err)
			}
			errs := p.Publish(context.Background(), []Message{msg})
			if !errors.Is(errs[0], ErrUnavailable) || !strings.Contains(errs[0].Error(), msg.MsgID) {
				t.Errorf("publish: %v, want ErrUnavailable naming the msg id", errs[0])
			}
			testutil.WaitFor(t, func() bool {
				return strings.Contains(strings.ToLower(logs.String()), c.refused)
			})
			if err := observer.Flush(); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-ch:
				t.Errorf("observer got %q from a refused client", got.Data)
			default:
			}
		})
	}
}
