package function

import (
	"crypto/tls"
	"encoding"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/kvtable"
	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/adapter/subject"
)

// Config is the whole configuration of the service. It is read from the
// environment only (Knative style); every field names its variable, its
// default and a one-line description, which `rgw-nats --help` prints.
type Config struct {
	// HTTP ingress.
	ListenAddress string               `env:"LISTEN_ADDRESS" desc:"address to listen on; overrides PORT (func images set [::]:8080)"`
	Port          string               `env:"PORT" default:"8080" desc:"port to listen on, all interfaces, when LISTEN_ADDRESS is unset"`
	MaxBodyBytes  int64                `env:"MAX_BODY_BYTES" default:"1048576" desc:"largest request body; a larger one from RGW is dead-lettered truncated, from others gets 413"`
	MaxInFlight   int64                `env:"MAX_INFLIGHT_BYTES" default:"16777216" desc:"request body bytes held at once by all requests being processed; past it a request gets 429 (CloudEvents senders) or 503 (RGW) before its body is read"`
	AuthUsername  string               `env:"AUTH_USERNAME" desc:"HTTP Basic user required on ingress (RGW: put it in the push-endpoint URL)"`
	AuthPassword  string               `secret:"true" env:"AUTH_PASSWORD" desc:"HTTP Basic password required on ingress"`
	AuthToken     string               `secret:"true" env:"AUTH_TOKEN" desc:"bearer token accepted on ingress (Authorization: Bearer ...)"`
	RetryAfter    int                  `env:"RETRY_AFTER" default:"1" desc:"seconds sent in Retry-After with a 503 or 429"`
	CloseRGW      bool                 `env:"RGW_CLOSE_CONNECTIONS" default:"true" desc:"close the HTTP connection after answering a raw RGW POST (a restarted adapter then never leaves RGW stuck on a dead keep-alive connection)"`
	Reply         bool                 `env:"REPLY" default:"false" desc:"answer a CloudEvent delivery with 200 and the transformed event (Knative Sequence), instead of 202"`
	ReplyType     string               `env:"REPLY_TYPE_SUFFIX" default:".nats" desc:"suffix added to the type of a reply event, so a Trigger never matches its own replies"`
	CEOverrides   cloudevent.Overrides `env:"K_CE_OVERRIDES" desc:"JSON {\"extensions\":{...}} set on every event (injected by a Knative SinkBinding)"`
	Shutdown      time.Duration        `env:"SHUTDOWN_TIMEOUT" default:"25s" desc:"how long SIGTERM waits for in-flight requests and the NATS drain"`
	ShutdownDelay time.Duration        `env:"SHUTDOWN_DELAY" default:"0s" desc:"rgw-nats serve: after SIGTERM, fail readiness but keep serving this long before shutting down (a preStop sleep for plain Deployments; Knative drains by itself)"`
	TLSCertFile   string               `env:"TLS_CERT_FILE" desc:"PEM certificate (chain): serve HTTPS, TLS 1.2+, instead of HTTP; reloaded when it changes (rgw-nats serve only)"`
	TLSKeyFile    string               `env:"TLS_KEY_FILE" desc:"PEM private key of TLS_CERT_FILE, reloaded with it"`

	// OIDC sender identity (Knative Eventing's authentication-oidc; function/internal/oidcauth).
	AuthOIDCIssuer    string `env:"AUTH_OIDC_ISSUER" desc:"OIDC issuer (iss) whose bearer JWTs are accepted on ingress, e.g. the cluster's service-account issuer; with AUTH_OIDC_AUDIENCE"`
	AuthOIDCAudience  string `env:"AUTH_OIDC_AUDIENCE" desc:"audience (aud) an accepted JWT must be issued for: the audience Knative senders are given for this sink"`
	AuthOIDCSubjects  string `env:"AUTH_OIDC_SUBJECTS" desc:"comma-separated subjects (sub) allowed to send, a trailing * matching any suffix (an EventPolicy's sub values); empty: any"`
	AuthOIDCDiscovery string `env:"AUTH_OIDC_DISCOVERY_URL" desc:"base URL of the issuer's /.well-known/openid-configuration; empty: AUTH_OIDC_ISSUER (in Kubernetes: https://kubernetes.default.svc)"`
	AuthOIDCCA        string `env:"AUTH_OIDC_CA" desc:"PEM file of the CAs of the issuer's HTTPS certificate; empty: the system's"`
	AuthOIDCTokenFile string `env:"AUTH_OIDC_TOKEN_FILE" desc:"file of a bearer token sent when fetching discovery and keys (the API server wants the pod's service-account token), read at every fetch"`

	// CloudEvents.
	CEMode binding.Encoding `env:"CE_MODE" default:"structured" desc:"CloudEvents NATS binding: structured (JSON payload) or binary (ce- headers)"`
	CEData cloudevent.Data  `env:"CE_DATA" default:"record" desc:"event data: record (the RGW record) or envelope ({\"Records\":[record]}, as RGW sends it)"`

	// NATS egress.
	NATSURL             string           `env:"NATS_URL" desc:"NATS server URL(s), comma separated; empty starts an embedded nats-server"`
	NATSMode            natsout.Mode     `env:"NATS_MODE" default:"core" desc:"core (publish, then flush) or jetstream (publish with Nats-Msg-Id, wait for the ack)"`
	NATSSubject         subject.Template `env:"NATS_SUBJECT" default:"rgw.{bucket}.{event}" desc:"subject template; fields {bucket} {key} {event} {type} {source} {id} {subject} {ext:NAME}"`
	NATSStream          string           `env:"NATS_STREAM" default:"RGW" desc:"JetStream stream that must capture the subjects (jetstream mode)"`
	NATSStreamCreate    bool             `env:"NATS_STREAM_CREATE" default:"false" desc:"create or update the stream at start (always done for the embedded server)"`
	NATSStreamSubjects  string           `env:"NATS_STREAM_SUBJECTS" desc:"subjects of a created stream, comma separated; default derived from NATS_SUBJECT (rgw.>)"`
	NATSAckTimeout      time.Duration    `env:"NATS_ACK_TIMEOUT" default:"5s" desc:"how long to wait for a flush or a JetStream ack before answering 503"`
	NATSCreds           string           `env:"NATS_CREDS" desc:"path of a NATS .creds file (JWT + nkey seed)"`
	NATSNkey            string           `env:"NATS_NKEY" desc:"path of an nkey seed file"`
	NATSUser            string           `env:"NATS_USER" desc:"NATS user name"`
	NATSPassword        string           `secret:"true" env:"NATS_PASSWORD" desc:"NATS password"`
	NATSToken           string           `secret:"true" env:"NATS_TOKEN" desc:"NATS authentication token"`
	NATSTLSCA           string           `env:"NATS_TLS_CA" alias:"NATS_CA" desc:"PEM file of CAs that sign the NATS server certificate"`
	NATSTLSCert         string           `env:"NATS_TLS_CERT" alias:"NATS_CERT" desc:"PEM client certificate for NATS mutual TLS"`
	NATSTLSKey          string           `env:"NATS_TLS_KEY" alias:"NATS_KEY" desc:"PEM key of NATS_TLS_CERT"`
	NATSClientName      string           `env:"NATS_CLIENT_NAME" default:"rgw-nats" desc:"connection name shown by the NATS server"`
	NATSEmbeddedListen  string           `env:"NATS_EMBEDDED_LISTEN" default:"127.0.0.1:4222" desc:"host:port of the embedded nats-server (port 0 picks a free one)"`
	NATSStoreDir        string           `env:"NATS_STORE_DIR" desc:"JetStream store of the embedded server; empty uses a temporary directory"`
	NATSStreamDupWindow time.Duration    `env:"NATS_STREAM_DUPLICATE_WINDOW" default:"10m" desc:"duplicate window (Nats-Msg-Id) of a created stream; cover RGW's retry horizon"`
	NATSStreamReplicas  int              `env:"NATS_STREAM_REPLICAS" default:"1" desc:"replicas of a created stream (3 on a 3-node cluster)"`

	// Failures and duplicates.
	DeadLetter        bool             `env:"DEAD_LETTER" default:"true" desc:"publish an event that fails permanently to the dead-letter subject and answer 2xx (RGW retries every other answer forever)"`
	DeadLetterSubject subject.Template `env:"DEAD_LETTER_SUBJECT" default:"rgwnats.deadletter.{bucket}" desc:"subject template of dead letters; keep it outside the subjects consumers read"`
	PoisonAttempts    int              `env:"POISON_ATTEMPTS" default:"3" desc:"Lua deadline hits of one event id (within POISON_WINDOW) after which it is a permanent failure; 0 never"`
	PoisonWindow      time.Duration    `env:"POISON_WINDOW" default:"10m" desc:"how long deadline hits of an event id are counted"`
	DedupWindow       time.Duration    `env:"DEDUP_WINDOW" default:"10m" desc:"how long a confirmed event id is remembered: a resent event is answered 2xx without publishing again; 0 off"`
	DedupMaxIDs       int              `env:"DEDUP_MAX_IDS" default:"100000" desc:"most event ids remembered (about 90 bytes each)"`
	MaxRequestBytes   int              `env:"MAX_REQUEST_OUTPUT_BYTES" default:"8388608" desc:"bytes all messages of one request may hold; more is a permanent failure"`

	// Lua transform.
	LuaScript   string        `env:"LUA_SCRIPT" desc:"Lua script file, or a directory of *.lua run in name order as a chain"`
	LuaFunction string        `env:"LUA_FUNCTION" default:"transform" desc:"name of the function a script defines to transform one event"`
	LuaTimeout  time.Duration `env:"LUA_TIMEOUT" default:"100ms" desc:"deadline of one script call"`
	LuaOnError  lua.Policy    `env:"LUA_ON_ERROR" default:"reject" desc:"when a script fails: reject (the event is a permanent failure: dead letter), drop, or passthrough"`
	LuaPoolSize int           `env:"LUA_POOL_SIZE" default:"0" desc:"Lua states kept ready; 0 means two per CPU"`
	LuaHMACKey  string        `secret:"true" env:"LUA_HMAC_KEY" desc:"secret key of rgwnats.hmac_sha256 (pseudonymisation); never put it in a script"`
	LuaReload   bool          `env:"LUA_RELOAD" default:"true" desc:"watch LUA_SCRIPT and swap in a new version when it changes"`
	LuaModules  string        `env:"LUA_MODULES" desc:"directories (separated by ':') of the pure-Lua modules require finds: name.lua, a/b.lua for a.b, name/init.lua"`
	// Lua bounds (adapter/lua/bounds.go; README "Bounds").
	LuaMaxOutputs     int           `env:"LUA_MAX_OUTPUTS" default:"100" desc:"most outputs of one event: returned events, clones and raw publishes together"`
	LuaMaxOutputBytes int           `env:"LUA_MAX_OUTPUT_BYTES" default:"1048576" desc:"most bytes one event may produce: data of its output events and clones, raw payloads, headers"`
	LuaMaxStates      int           `env:"LUA_MAX_STATES" default:"0" desc:"live Lua states per script; 0 means two per CPU; a call waits LUA_STATE_WAIT for one, then 429 (CloudEvents senders) or 503 (RGW)"`
	LuaStateWait      time.Duration `env:"LUA_STATE_WAIT" default:"0" desc:"how long a call waits for a busy Lua state; 0 means LUA_TIMEOUT"`
	LuaMemoryLimit    int64         `env:"LUA_MEMORY_LIMIT" default:"0" desc:"Go heap bytes past which running Lua calls are stopped (503); 0 means half of GOMEMLIMIT (256 MiB without), negative turns it off"`
	// The RGW table in a NATS KV bucket (adapter/kvtable).
	LuaRGWTableKV         string `env:"LUA_RGW_TABLE_KV" desc:"NATS KV bucket holding the scripts' RGW table, shared by every replica and kept across restarts; empty keeps it in memory"`
	LuaRGWTableKVReplicas int    `env:"LUA_RGW_TABLE_KV_REPLICAS" default:"1" desc:"replicas of the KV bucket when it is created (with NATS_STREAM_CREATE or the embedded server)"`

	// Logging.
	LogLevel  string `env:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat string `env:"LOG_FORMAT" default:"json" desc:"json or text"`

	// Metrics and tracing.
	MetricsAddress     string `env:"METRICS_ADDRESS" desc:"where GET /metrics (Prometheus) is served: empty: on the main port; host:port: on a listener of its own only; off: no metrics"`
	OTELEndpoint       string `env:"OTEL_EXPORTER_OTLP_ENDPOINT" desc:"OTLP/HTTP collector base URL (/v1/traces is appended); set, spans are exported; empty, none are (trace context still passes through)"`
	OTELTracesEndpoint string `env:"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" desc:"OTLP/HTTP URL for spans, used as it is; overrides OTEL_EXPORTER_OTLP_ENDPOINT"`
	OTELProtocol       string `env:"OTEL_EXPORTER_OTLP_PROTOCOL" default:"http/protobuf" desc:"OTLP protocol; only http/protobuf is supported"`
	OTELServiceName    string `env:"OTEL_SERVICE_NAME" default:"rgw-nats" desc:"service.name of the exported spans"`
	OTELDisabled       bool   `env:"OTEL_SDK_DISABLED" default:"false" desc:"true: export no spans even with an endpoint set"`
}

// LoadConfig reads Config from the process environment and checks it.
func LoadConfig() (Config, error) { return ConfigFrom(os.LookupEnv) }

// ConfigFromMap reads Config from an environment given as a map, as
// Knative's func scaffolding hands it to Start.
func ConfigFromMap(env map[string]string) (Config, error) {
	return ConfigFrom(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

// ConfigFrom reads Config through lookup: every field from its variable, or
// its default when the variable is unset, each parsed once into its type;
// then it checks the whole. Errors name the variable.
func ConfigFrom(lookup func(string) (string, bool)) (Config, error) {
	var c Config
	v := reflect.ValueOf(&c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("env")
		text, ok := lookup(name)
		if alias := f.Tag.Get("alias"); !ok && alias != "" {
			// The name another tool reads for the same thing (natscli's
			// NATS_CA, NATS_CERT, NATS_KEY); ours wins when both are set.
			if text, ok = lookup(alias); ok {
				name = alias
			}
		}
		if !ok {
			text = f.Tag.Get("default")
		}
		if err := setField(v.Field(i), text); err != nil {
			return c, fmt.Errorf("configuration: %s=%q: %w", name, text, err)
		}
	}
	return c, c.Validate()
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func setField(f reflect.Value, text string) error {
	if f.Addr().Type().Implements(textUnmarshaler) {
		if text == "" && f.Kind() == reflect.Map {
			return nil
		}
		return f.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(text))
	}
	if text == "" && f.Kind() != reflect.String {
		return nil // unset: the zero value
	}
	switch f.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(text)
		f.SetInt(int64(d))
		return err
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(text)
	case reflect.Bool:
		b, err := strconv.ParseBool(text)
		f.SetBool(b)
		return err
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(text, 10, 64)
		f.SetInt(n)
		return err
	default:
		return fmt.Errorf("unsupported field type %s", f.Type())
	}
	return nil
}

// Validate reports the first setting that cannot work. Modes and policies
// were checked as they were parsed.
func (c *Config) Validate() error {
	switch {
	case c.MaxBodyBytes <= 0:
		return errors.New("configuration: MAX_BODY_BYTES must be positive")
	case c.MaxInFlight < c.MaxBodyBytes:
		return errors.New("configuration: MAX_INFLIGHT_BYTES must be at least MAX_BODY_BYTES")
	case (c.AuthUsername == "") != (c.AuthPassword == ""):
		return errors.New("configuration: AUTH_USERNAME and AUTH_PASSWORD go together")
	case c.AuthOIDCIssuer == "" && (c.AuthOIDCAudience != "" || c.AuthOIDCSubjects != "" || c.AuthOIDCDiscovery != "" || c.AuthOIDCCA != "" || c.AuthOIDCTokenFile != ""):
		return errors.New("configuration: AUTH_OIDC_* settings need AUTH_OIDC_ISSUER")
	case c.NATSAckTimeout <= 0:
		return errors.New("configuration: NATS_ACK_TIMEOUT must be positive")
	case c.LuaTimeout <= 0:
		return errors.New("configuration: LUA_TIMEOUT must be positive")
	case c.ShutdownDelay < 0:
		return errors.New("configuration: SHUTDOWN_DELAY must not be negative")
	case c.LuaRGWTableKV != "" && !kvtable.ValidBucket(c.LuaRGWTableKV):
		return fmt.Errorf("configuration: LUA_RGW_TABLE_KV %q: a KV bucket name has only letters, digits, - and _", c.LuaRGWTableKV)
	case c.LuaRGWTableKVReplicas < 1 || c.LuaRGWTableKVReplicas > 5:
		return fmt.Errorf("configuration: LUA_RGW_TABLE_KV_REPLICAS must be 1 to 5, not %d", c.LuaRGWTableKVReplicas)
	case c.DedupMaxIDs < 0 || c.PoisonAttempts < 0 || c.MaxRequestBytes < 0 || c.NATSStreamReplicas < 1:
		return errors.New("configuration: DEDUP_MAX_IDS, POISON_ATTEMPTS and MAX_REQUEST_OUTPUT_BYTES must not be negative, NATS_STREAM_REPLICAS at least 1")
	}
	if err := c.validateLogging(); err != nil {
		return err
	}
	if err := c.validateTelemetry(); err != nil {
		return err
	}
	if oc := c.oidc(); oc != nil {
		if err := oc.Validate(); err != nil {
			return fmt.Errorf("configuration: AUTH_OIDC_*: %w", err)
		}
	}
	if c.DeadLetter {
		for _, s := range c.streamSubjects() {
			if subject.Overlap(s, c.DeadLetterSubject.StreamSubjects()) {
				return fmt.Errorf("configuration: DEAD_LETTER_SUBJECT %q falls inside the event subjects %q: consumers would take dead letters for events", c.DeadLetterSubject.String(), s)
			}
		}
	}
	return nil
}

// Log levels and formats LOG_LEVEL and LOG_FORMAT accept.
var (
	logLevels  = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
	logFormats = []string{"json", "text"}
)

func (c *Config) validateLogging() error {
	if _, ok := logLevels[strings.ToLower(c.LogLevel)]; !ok {
		return fmt.Errorf("configuration: LOG_LEVEL=%q: want debug, info, warn or error", c.LogLevel)
	}
	if !slices.Contains(logFormats, strings.ToLower(c.LogFormat)) {
		return fmt.Errorf("configuration: LOG_FORMAT=%q: want json or text", c.LogFormat)
	}
	return nil
}

// CheckFiles reports the first file the configuration names that cannot be
// used: a script (LUA_SCRIPT) or module directory (LUA_MODULES) that is not
// there, a TLS pair (TLS_CERT_FILE, TLS_KEY_FILE) that does not load, a
// NATS credentials, nkey or TLS file that cannot be read. rgw-nats serve
// runs it before it listens or starts the embedded NATS server, so that a
// typo stops the start at once with the variable's name.
func (c *Config) CheckFiles() error {
	if c.LuaScript != "" {
		if err := checkScript(c.LuaScript); err != nil {
			return fmt.Errorf("configuration: LUA_SCRIPT=%q: %w", c.LuaScript, err)
		}
	}
	if c.LuaModules != "" {
		for _, dir := range filepath.SplitList(c.LuaModules) {
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return fmt.Errorf("configuration: LUA_MODULES: %q is not a directory", dir)
			}
		}
	}
	switch {
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return errors.New("configuration: TLS_CERT_FILE and TLS_KEY_FILE go together")
	case c.TLSCertFile != "":
		if _, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile); err != nil {
			return fmt.Errorf("configuration: TLS_CERT_FILE=%q, TLS_KEY_FILE=%q: %w", c.TLSCertFile, c.TLSKeyFile, err)
		}
	}
	for _, f := range []struct{ name, path string }{
		{"NATS_CREDS", c.NATSCreds}, {"NATS_NKEY", c.NATSNkey},
		{"NATS_TLS_CA", c.NATSTLSCA}, {"NATS_TLS_CERT", c.NATSTLSCert}, {"NATS_TLS_KEY", c.NATSTLSKey},
	} {
		if f.path == "" {
			continue
		}
		if fh, err := os.Open(f.path); err != nil {
			return fmt.Errorf("configuration: %s: %w", f.name, err)
		} else {
			fh.Close()
		}
	}
	return nil
}

// checkScript: a readable file, or a directory holding at least one *.lua.
func checkScript(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		return f.Close()
	}
	scripts, err := filepath.Glob(filepath.Join(path, "*.lua"))
	if err != nil {
		return err
	}
	if len(scripts) == 0 {
		return errors.New("a directory without *.lua scripts")
	}
	return nil
}

func (c *Config) validateTelemetry() error {
	switch c.MetricsAddress {
	case "", metricsOff:
	default:
		if _, _, err := net.SplitHostPort(c.MetricsAddress); err != nil {
			return fmt.Errorf("configuration: METRICS_ADDRESS=%q: want host:port, empty (the main port) or off: %w", c.MetricsAddress, err)
		}
	}
	if c.tracesURL() == "" {
		return nil
	}
	if c.OTELProtocol != "http/protobuf" {
		return fmt.Errorf("configuration: OTEL_EXPORTER_OTLP_PROTOCOL=%q: only http/protobuf is supported (a collector's OTLP/HTTP port, usually 4318)", c.OTELProtocol)
	}
	for _, v := range []struct{ name, value string }{
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", c.OTELTracesEndpoint}, {"OTEL_EXPORTER_OTLP_ENDPOINT", c.OTELEndpoint},
	} {
		if v.value == "" {
			continue
		}
		if u, err := url.Parse(v.value); err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
			return fmt.Errorf("configuration: %s=%q: want an http:// or https:// URL", v.name, v.value)
		}
	}
	return nil
}

// Addr is the address the HTTP server listens on.
func (c *Config) Addr() string {
	if c.ListenAddress != "" {
		return c.ListenAddress
	}
	return ":" + c.Port
}

// PrintUsage writes every variable with its default and description.
func PrintUsage(w io.Writer) error {
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		f := t.Field(i)
		def := ""
		if a := f.Tag.Get("alias"); a != "" {
			def = " (or " + a + ")"
		}
		if d := f.Tag.Get("default"); d != "" {
			def += " (default " + d + ")"
		}
		if _, err := fmt.Fprintf(w, "  %s%s\n      %s\n", f.Tag.Get("env"), def, f.Tag.Get("desc")); err != nil {
			return err
		}
	}
	return nil
}

// streamSubjects are the subjects a created stream captures for events:
// NATS_STREAM_SUBJECTS, or what NATS_SUBJECT can produce.
func (c *Config) streamSubjects() []string {
	if c.NATSStreamSubjects == "" {
		return []string{c.NATSSubject.StreamSubjects()}
	}
	var out []string
	for s := range strings.SplitSeq(c.NATSStreamSubjects, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
