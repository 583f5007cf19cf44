package service

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/kvtable"
	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/adapter/subject"
)

// Settings are what rgw-nats is built from, each field named after its
// environment variable with its default and a one-line description (package
// function reads them, with the HTTP settings, into function.Config, which
// embeds Settings; `rgw-nats --help` prints them). A new setting of the
// pipeline, NATS, Lua or the RGW table is a field here and a line in the one
// mapping below it (settings.go), nowhere else.
type Settings struct {
	// CloudEvents.
	CEOverrides cloudevent.Overrides `env:"K_CE_OVERRIDES" desc:"JSON {\"extensions\":{...}} set on every event (injected by a Knative SinkBinding)"`
	CEMode      binding.Encoding     `env:"CE_MODE" default:"structured" desc:"CloudEvents NATS binding: structured (JSON payload) or binary (ce- headers)"`
	CEData      cloudevent.Data      `env:"CE_DATA" default:"record" desc:"event data: record (the RGW record) or envelope ({\"Records\":[record]}, as RGW sends it)"`

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
}

// Validate reports the first setting that cannot work. Modes, policies and
// templates were checked as they were parsed.
func (s *Settings) Validate() error {
	switch {
	case s.NATSAckTimeout <= 0:
		return errors.New("configuration: NATS_ACK_TIMEOUT must be positive")
	case s.LuaTimeout <= 0:
		return errors.New("configuration: LUA_TIMEOUT must be positive")
	case s.LuaRGWTableKV != "" && !kvtable.ValidBucket(s.LuaRGWTableKV):
		return fmt.Errorf("configuration: LUA_RGW_TABLE_KV %q: a KV bucket name has only letters, digits, - and _", s.LuaRGWTableKV)
	case s.LuaRGWTableKVReplicas < 1 || s.LuaRGWTableKVReplicas > 5:
		return fmt.Errorf("configuration: LUA_RGW_TABLE_KV_REPLICAS must be 1 to 5, not %d", s.LuaRGWTableKVReplicas)
	case s.DedupMaxIDs < 0 || s.PoisonAttempts < 0 || s.MaxRequestBytes < 0 || s.NATSStreamReplicas < 1:
		return errors.New("configuration: DEDUP_MAX_IDS, POISON_ATTEMPTS and MAX_REQUEST_OUTPUT_BYTES must not be negative, NATS_STREAM_REPLICAS at least 1")
	}
	if s.DeadLetter {
		for _, subj := range s.streamSubjects() {
			if subject.Overlap(subj, s.DeadLetterSubject.StreamSubjects()) {
				return fmt.Errorf("configuration: DEAD_LETTER_SUBJECT %q falls inside the event subjects %q: consumers would take dead letters for events", s.DeadLetterSubject.String(), subj)
			}
		}
	}
	return nil
}

// CheckFiles reports the first file the settings name that cannot be used:
// a script (LUA_SCRIPT) or module directory (LUA_MODULES) that is not there,
// a NATS credentials, nkey or TLS file that cannot be read.
func (s *Settings) CheckFiles() error {
	if s.LuaScript != "" {
		if err := checkScript(s.LuaScript); err != nil {
			return fmt.Errorf("configuration: LUA_SCRIPT=%q: %w", s.LuaScript, err)
		}
	}
	if s.LuaModules != "" {
		for _, dir := range filepath.SplitList(s.LuaModules) {
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return fmt.Errorf("configuration: LUA_MODULES: %q is not a directory", dir)
			}
		}
	}
	for _, f := range []struct{ name, path string }{
		{"NATS_CREDS", s.NATSCreds}, {"NATS_NKEY", s.NATSNkey},
		{"NATS_TLS_CA", s.NATSTLSCA}, {"NATS_TLS_CERT", s.NATSTLSCert}, {"NATS_TLS_KEY", s.NATSTLSKey},
	} {
		if f.path == "" {
			continue
		}
		fh, err := os.Open(f.path)
		if err != nil {
			return fmt.Errorf("configuration: %s: %w", f.name, err)
		}
		fh.Close()
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

// streamSubjects are the subjects a created stream captures for events:
// NATS_STREAM_SUBJECTS, or what NATS_SUBJECT can produce.
func (s *Settings) streamSubjects() []string {
	if s.NATSStreamSubjects == "" {
		return []string{s.NATSSubject.StreamSubjects()}
	}
	var out []string
	for subj := range strings.SplitSeq(s.NATSStreamSubjects, ",") {
		if subj = strings.TrimSpace(subj); subj != "" {
			out = append(out, subj)
		}
	}
	return out
}

// natsConnection maps the settings of a connection: where, who, TLS.
func (s *Settings) natsConnection(name string, log *slog.Logger) natsout.Config {
	return natsout.Config{
		URL:          s.NATSURL,
		Name:         name,
		CredsFile:    s.NATSCreds,
		NkeySeedFile: s.NATSNkey,
		User:         s.NATSUser,
		Password:     s.NATSPassword,
		Token:        s.NATSToken,
		TLSCA:        s.NATSTLSCA,
		TLSCert:      s.NATSTLSCert,
		TLSKey:       s.NATSTLSKey,
		Logger:       log,
	}
}

// natsConfig is the publisher's configuration: the connection, the mode and
// the stream that must capture events and dead letters.
func (s *Settings) natsConfig(log *slog.Logger) natsout.Config {
	c := s.natsConnection(s.NATSClientName, log)
	c.Mode = s.NATSMode
	c.Stream = s.NATSStream
	c.StreamCreate = s.NATSStreamCreate
	c.StreamSubjects = s.streamSubjects()
	c.DuplicateWindow = s.NATSStreamDupWindow
	c.Replicas = s.NATSStreamReplicas
	c.AckTimeout = s.NATSAckTimeout
	if s.DeadLetter {
		dl := s.DeadLetterSubject.StreamSubjects()
		c.StreamSubjects = append(c.StreamSubjects, dl)
		c.MustCapture = []string{dl}
	}
	return c
}

// pipelineConfig is the adapter's configuration.
func (s *Settings) pipelineConfig() adapter.Config {
	pc := adapter.Config{
		Mapping:         cloudevent.Options{Envelope: s.CEData == cloudevent.DataEnvelope, Extensions: s.CEOverrides},
		Subject:         &s.NATSSubject,
		Encoding:        s.CEMode,
		DedupWindow:     s.DedupWindow,
		DedupMaxIDs:     s.DedupMaxIDs,
		PoisonAttempts:  s.PoisonAttempts,
		PoisonWindow:    s.PoisonWindow,
		MaxRequestBytes: s.MaxRequestBytes,
	}
	if s.LuaScript != "" {
		pc.EventTimeout = s.LuaTimeout
	}
	if s.DeadLetter {
		pc.DeadLetter = &s.DeadLetterSubject
	}
	return pc
}

// luaOptions are the Lua engine's options.
func (s *Settings) luaOptions(log *slog.Logger) []lua.Option {
	pool := s.LuaPoolSize
	if pool <= 0 {
		pool = 2 * runtime.GOMAXPROCS(0)
	}
	opts := []lua.Option{
		lua.WithFunction(s.LuaFunction),
		lua.WithTimeout(s.LuaTimeout),
		lua.WithOnError(s.LuaOnError),
		lua.WithPoolSize(pool),
		lua.WithLogger(log),
	}
	if !s.LuaReload {
		opts = append(opts, lua.WithReload(0))
	}
	if s.LuaHMACKey != "" {
		opts = append(opts, lua.WithHMACKey([]byte(s.LuaHMACKey)))
	}
	if s.LuaModules != "" {
		opts = append(opts, lua.WithModuleDirs(filepath.SplitList(s.LuaModules)...))
	}
	return append(opts,
		lua.WithMaxOutputs(s.LuaMaxOutputs),
		lua.WithMaxOutputBytes(s.LuaMaxOutputBytes),
		lua.WithMaxStates(s.LuaMaxStates),
		lua.WithStateWait(s.LuaStateWait),
		lua.WithMemoryLimit(s.LuaMemoryLimit),
	)
}
