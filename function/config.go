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
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rgw-nats/rgw-nats/adapter/service"
)

// Config is the whole configuration of the service. It is read from the
// environment only (Knative style); every field names its variable, its
// default and a one-line description, which `rgw-nats --help` prints.
type Config struct {
	// HTTP ingress.
	ListenAddress string        `env:"LISTEN_ADDRESS" desc:"address to listen on; overrides PORT (func images set [::]:8080)"`
	Port          string        `env:"PORT" default:"8080" desc:"port to listen on, all interfaces, when LISTEN_ADDRESS is unset"`
	MaxBodyBytes  int64         `env:"MAX_BODY_BYTES" default:"1048576" desc:"largest request body; a larger one from RGW is dead-lettered truncated, from others gets 413"`
	MaxInFlight   int64         `env:"MAX_INFLIGHT_BYTES" default:"16777216" desc:"request body bytes held at once by all requests being processed; past it a request gets 429 (CloudEvents senders) or 503 (RGW) before its body is read"`
	AuthUsername  string        `env:"AUTH_USERNAME" desc:"HTTP Basic user required on ingress (RGW: put it in the push-endpoint URL)"`
	AuthPassword  string        `secret:"true" env:"AUTH_PASSWORD" desc:"HTTP Basic password required on ingress"`
	AuthToken     string        `secret:"true" env:"AUTH_TOKEN" desc:"bearer token accepted on ingress (Authorization: Bearer ...)"`
	RetryAfter    int           `env:"RETRY_AFTER" default:"1" desc:"seconds sent in Retry-After with a 503 or 429"`
	CloseRGW      bool          `env:"RGW_CLOSE_CONNECTIONS" default:"true" desc:"close the HTTP connection after answering a raw RGW POST (a restarted adapter then never leaves RGW stuck on a dead keep-alive connection)"`
	Reply         bool          `env:"REPLY" default:"false" desc:"answer a CloudEvent delivery with 200 and the transformed event (Knative Sequence), instead of 202"`
	ReplyType     string        `env:"REPLY_TYPE_SUFFIX" default:".nats" desc:"suffix added to the type of a reply event, so a Trigger never matches its own replies"`
	Shutdown      time.Duration `env:"SHUTDOWN_TIMEOUT" default:"25s" desc:"how long SIGTERM waits for in-flight requests and the NATS drain"`
	ShutdownDelay time.Duration `env:"SHUTDOWN_DELAY" default:"0s" desc:"rgw-nats serve: after SIGTERM, fail readiness but keep serving this long before shutting down (a preStop sleep for plain Deployments; Knative drains by itself)"`
	TLSCertFile   string        `env:"TLS_CERT_FILE" desc:"PEM certificate (chain): serve HTTPS, TLS 1.2+, instead of HTTP; reloaded when it changes (rgw-nats serve only)"`
	TLSKeyFile    string        `env:"TLS_KEY_FILE" desc:"PEM private key of TLS_CERT_FILE, reloaded with it"`

	// OIDC sender identity (Knative Eventing's authentication-oidc; function/internal/oidcauth).
	AuthOIDCIssuer    string `env:"AUTH_OIDC_ISSUER" desc:"OIDC issuer (iss) whose bearer JWTs are accepted on ingress, e.g. the cluster's service-account issuer; with AUTH_OIDC_AUDIENCE"`
	AuthOIDCAudience  string `env:"AUTH_OIDC_AUDIENCE" desc:"audience (aud) an accepted JWT must be issued for: the audience Knative senders are given for this sink"`
	AuthOIDCSubjects  string `env:"AUTH_OIDC_SUBJECTS" desc:"comma-separated subjects (sub) allowed to send, a trailing * matching any suffix (an EventPolicy's sub values), {namespace} the pod's namespace; empty: any"`
	AuthOIDCDiscovery string `env:"AUTH_OIDC_DISCOVERY_URL" desc:"base URL of the issuer's /.well-known/openid-configuration; empty: AUTH_OIDC_ISSUER (in Kubernetes: https://kubernetes.default.svc)"`
	AuthOIDCCA        string `env:"AUTH_OIDC_CA" desc:"PEM file of the CAs of the issuer's HTTPS certificate; empty: the system's"`
	AuthOIDCTokenFile string `env:"AUTH_OIDC_TOKEN_FILE" desc:"file of a bearer token sent when fetching discovery and keys (the API server wants the pod's service-account token), read at every fetch"`

	// What the pipeline, its NATS connection, the Lua engine and the RGW
	// table are built from (adapter/service).
	service.Settings

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
	for _, f := range fields() {
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
		if err := setField(v.FieldByIndex(f.Index), text); err != nil {
			return c, fmt.Errorf("configuration: %s=%q: %w", name, text, err)
		}
	}
	return c, c.Validate()
}

// fields are Config's variables, those of the embedded service.Settings
// included, in their order.
func fields() []reflect.StructField {
	var fs []reflect.StructField
	for _, f := range reflect.VisibleFields(reflect.TypeFor[Config]()) {
		if f.Tag.Get("env") != "" {
			fs = append(fs, f)
		}
	}
	return fs
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
	case c.ShutdownDelay < 0:
		return errors.New("configuration: SHUTDOWN_DELAY must not be negative")
	}
	if err := c.Settings.Validate(); err != nil {
		return err
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
		for _, s := range oc.Subjects {
			if rest := strings.ReplaceAll(s, namespacePlaceholder, ""); strings.ContainsAny(rest, "{}") {
				return fmt.Errorf("configuration: AUTH_OIDC_SUBJECTS: %q: the one placeholder is %s", s, namespacePlaceholder)
			}
			if strings.Contains(s, namespacePlaceholder) && oc.TokenFile == "" {
				return fmt.Errorf("configuration: AUTH_OIDC_SUBJECTS: %w", errNamespaceFile)
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
// used: those of the settings (service.Settings.CheckFiles: Lua scripts and
// modules, NATS credentials, nkey and TLS files), and a TLS pair
// (TLS_CERT_FILE, TLS_KEY_FILE) that does not load. rgw-nats serve runs it
// before it listens or starts the embedded NATS server, so that a typo stops
// the start at once with the variable's name.
func (c *Config) CheckFiles() error {
	if err := c.Settings.CheckFiles(); err != nil {
		return err
	}
	if oc := c.oidc(); oc != nil {
		if err := placeNamespace(oc); err != nil {
			return fmt.Errorf("configuration: AUTH_OIDC_SUBJECTS: %w", err)
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
	for _, f := range fields() {
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
