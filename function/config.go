package function

import (
	"fmt"
	"io"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Config is the whole configuration of the service. It is read from the
// environment only (Knative style); every field names its variable, its
// default and a one-line description, which `rgw-nats --help` prints.
type Config struct {
	// HTTP ingress.
	ListenAddress string        `envconfig:"LISTEN_ADDRESS" desc:"address to listen on; overrides PORT (func images set [::]:8080)"`
	Port          string        `envconfig:"PORT" default:"8080" desc:"port to listen on, all interfaces, when LISTEN_ADDRESS is unset"`
	MaxBodyBytes  int64         `envconfig:"MAX_BODY_BYTES" default:"1048576" desc:"largest request body accepted; larger gets 413"`
	AuthUsername  string        `envconfig:"AUTH_USERNAME" desc:"HTTP Basic user required on ingress (RGW: put it in the push-endpoint URL)"`
	AuthPassword  string        `envconfig:"AUTH_PASSWORD" desc:"HTTP Basic password required on ingress"`
	AuthToken     string        `envconfig:"AUTH_TOKEN" desc:"bearer token accepted on ingress (Authorization: Bearer ...)"`
	RetryAfter    int           `envconfig:"RETRY_AFTER" default:"1" desc:"seconds sent in Retry-After with a 503"`
	CloseRGW      bool          `envconfig:"RGW_CLOSE_CONNECTIONS" default:"true" desc:"close the HTTP connection after answering a raw RGW POST (a restarted adapter then never leaves RGW stuck on a dead keep-alive connection)"`
	Reply         bool          `envconfig:"REPLY" default:"false" desc:"answer a CloudEvent delivery with 200 and the transformed event (Knative Sequence), instead of 202"`
	ReplyType     string        `envconfig:"REPLY_TYPE_SUFFIX" default:".nats" desc:"suffix added to the type of a reply event, so a Trigger never matches its own replies"`
	CEOverrides   string        `envconfig:"K_CE_OVERRIDES" desc:"JSON {\"extensions\":{...}} set on every event (injected by a Knative SinkBinding)"`
	Shutdown      time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"25s" desc:"how long SIGTERM waits for in-flight requests and the NATS drain"`

	// CloudEvents.
	CEMode string `envconfig:"CE_MODE" default:"structured" desc:"CloudEvents NATS binding: structured (JSON payload) or binary (ce- headers)"`
	CEData string `envconfig:"CE_DATA" default:"record" desc:"event data: record (the RGW record) or envelope ({\"Records\":[record]}, as RGW sends it)"`

	// NATS egress.
	NATSURL            string        `envconfig:"NATS_URL" desc:"NATS server URL(s), comma separated; empty starts an embedded nats-server"`
	NATSMode           string        `envconfig:"NATS_MODE" default:"core" desc:"core (publish, then flush) or jetstream (publish with Nats-Msg-Id, wait for the ack)"`
	NATSSubject        string        `envconfig:"NATS_SUBJECT" default:"rgw.{bucket}.{event}" desc:"subject template; fields {bucket} {key} {event} {type} {source} {id} {subject} {ext:NAME}"`
	NATSStream         string        `envconfig:"NATS_STREAM" default:"RGW" desc:"JetStream stream that must capture the subjects (jetstream mode)"`
	NATSStreamCreate   bool          `envconfig:"NATS_STREAM_CREATE" default:"false" desc:"create or update the stream at start (always done for the embedded server)"`
	NATSStreamSubjects string        `envconfig:"NATS_STREAM_SUBJECTS" desc:"subjects of a created stream, comma separated; default derived from NATS_SUBJECT (rgw.>)"`
	NATSAckTimeout     time.Duration `envconfig:"NATS_ACK_TIMEOUT" default:"5s" desc:"how long to wait for a flush or a JetStream ack before answering 503"`
	NATSCreds          string        `envconfig:"NATS_CREDS" desc:"path of a NATS .creds file (JWT + nkey seed)"`
	NATSNkey           string        `envconfig:"NATS_NKEY" desc:"path of an nkey seed file"`
	NATSUser           string        `envconfig:"NATS_USER" desc:"NATS user name"`
	NATSPassword       string        `envconfig:"NATS_PASSWORD" desc:"NATS password"`
	NATSToken          string        `envconfig:"NATS_TOKEN" desc:"NATS authentication token"`
	NATSTLSCA          string        `envconfig:"NATS_TLS_CA" desc:"PEM file of CAs that sign the NATS server certificate"`
	NATSTLSCert        string        `envconfig:"NATS_TLS_CERT" desc:"PEM client certificate for NATS mutual TLS"`
	NATSTLSKey         string        `envconfig:"NATS_TLS_KEY" desc:"PEM key of NATS_TLS_CERT"`
	NATSClientName     string        `envconfig:"NATS_CLIENT_NAME" default:"rgw-nats" desc:"connection name shown by the NATS server"`
	NATSEmbeddedListen string        `envconfig:"NATS_EMBEDDED_LISTEN" default:"127.0.0.1:4222" desc:"host:port of the embedded nats-server (port 0 picks a free one)"`
	NATSStoreDir       string        `envconfig:"NATS_STORE_DIR" desc:"JetStream store of the embedded server; empty uses a temporary directory"`

	// Lua transform.
	LuaScript   string        `envconfig:"LUA_SCRIPT" desc:"Lua script file, or a directory of *.lua run in name order as a chain"`
	LuaFunction string        `envconfig:"LUA_FUNCTION" default:"transform" desc:"name of the function a script defines to transform one event"`
	LuaTimeout  time.Duration `envconfig:"LUA_TIMEOUT" default:"100ms" desc:"deadline of one script call"`
	LuaOnError  string        `envconfig:"LUA_ON_ERROR" default:"reject" desc:"when a script fails: reject (5xx, sender retries), drop, or passthrough"`
	LuaPoolSize int           `envconfig:"LUA_POOL_SIZE" default:"0" desc:"Lua states kept ready; 0 means two per CPU"`
	LuaHMACKey  string        `envconfig:"LUA_HMAC_KEY" desc:"secret key of rgwnats.hmac_sha256 (pseudonymisation); never put it in a script"`
	LuaReload   bool          `envconfig:"LUA_RELOAD" default:"true" desc:"watch LUA_SCRIPT and swap in a new version when it changes"`

	// Logging.
	LogLevel  string `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat string `envconfig:"LOG_FORMAT" default:"json" desc:"json or text"`
}

// LoadConfig reads Config from the environment and checks it.
func LoadConfig() (Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	return c, c.Validate()
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.CEMode != "structured" && c.CEMode != "binary":
		return fmt.Errorf("configuration: CE_MODE must be structured or binary, not %q", c.CEMode)
	case c.CEData != "record" && c.CEData != "envelope":
		return fmt.Errorf("configuration: CE_DATA must be record or envelope, not %q", c.CEData)
	case c.NATSMode != "core" && c.NATSMode != "jetstream":
		return fmt.Errorf("configuration: NATS_MODE must be core or jetstream, not %q", c.NATSMode)
	case c.LuaOnError != "reject" && c.LuaOnError != "drop" && c.LuaOnError != "passthrough":
		return fmt.Errorf("configuration: LUA_ON_ERROR must be reject, drop or passthrough, not %q", c.LuaOnError)
	case c.MaxBodyBytes <= 0:
		return fmt.Errorf("configuration: MAX_BODY_BYTES must be positive")
	case (c.AuthUsername == "") != (c.AuthPassword == ""):
		return fmt.Errorf("configuration: AUTH_USERNAME and AUTH_PASSWORD go together")
	case c.NATSAckTimeout <= 0:
		return fmt.Errorf("configuration: NATS_ACK_TIMEOUT must be positive")
	case c.LuaTimeout <= 0:
		return fmt.Errorf("configuration: LUA_TIMEOUT must be positive")
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
	var c Config
	return envconfig.Usagef("", &c, w, usageFormat)
}

const usageFormat = `{{range .}}  {{usage_key .}}{{if usage_default .}} (default {{usage_default .}}){{end}}
      {{usage_description .}}
{{end}}`
