package function

import (
	"encoding"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"

	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/internal/buildinfo"
)

// logStart writes the one start-up line: the build, and every variable of
// the configuration in force (defaults included), secrets (fields tagged
// secret) hidden, so that an operator sees which script, mode, stream,
// subjects and dead letter run. Both hosts log it: the binary and func's
// scaffolding.
func logStart(log *slog.Logger, cfg *Config) {
	bi := buildinfo.Read()
	log.Info("rgw-nats starting", "version", bi.Version, "revision", bi.Revision,
		slog.Group("config", configAttrs(cfg)...))
}

// configAttrs is the configuration as one attribute per variable.
func configAttrs(cfg *Config) []any {
	v := reflect.ValueOf(cfg).Elem()
	fs := fields()
	attrs := make([]any, 0, len(fs))
	for _, f := range fs {
		name := f.Tag.Get("env")
		val := configValue(v.FieldByIndex(f.Index))
		switch {
		case f.Tag.Get("secret") == "true" && val != "":
			val = "***"
		case name == "NATS_URL":
			val = natsout.RedactURL(val)
		}
		attrs = append(attrs, slog.String(name, val))
	}
	return attrs
}

// configValue writes a value readably: in its text form (the way its
// variable is written), or as JSON when it is a map or a list.
func configValue(f reflect.Value) string {
	if f.CanAddr() {
		if m, ok := f.Addr().Interface().(encoding.TextMarshaler); ok {
			if b, err := m.MarshalText(); err == nil {
				return string(b)
			}
		}
	}
	if s, ok := f.Interface().(fmt.Stringer); ok {
		return s.String()
	}
	if k := f.Kind(); k == reflect.Map || k == reflect.Slice {
		if f.Len() == 0 {
			return ""
		}
		if b, err := json.Marshal(f.Interface()); err == nil {
			return string(b)
		}
	}
	return fmt.Sprint(f.Interface())
}
