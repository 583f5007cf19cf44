package function_test

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/rgw-nats/rgw-nats/function"
)

// TestREADMEConfigTable keeps the README's configuration table and the Config
// struct in step: every variable the service reads is documented with its
// default, and the table names no variable the service ignores.
func TestREADMEConfigTable(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "<!-- config-table")
	if !ok {
		t.Fatal("README has no config-table marker")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	documented := map[string]string{} // variable -> default column
	row := regexp.MustCompile("(?m)^\\| ([^|]+)\\|([^|]*)\\|")
	name := regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		for _, n := range name.FindAllStringSubmatch(m[1], -1) {
			documented[n[1]] = m[2]
		}
	}
	read := map[string]bool{}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[function.Config]()) {
		env := f.Tag.Get("env")
		if env == "" {
			continue // the embedded service.Settings: its fields follow
		}
		read[env] = true
		if alias := f.Tag.Get("alias"); alias != "" {
			read[alias] = true
			if _, ok := documented[alias]; !ok {
				t.Errorf("README does not document %s, the alias of %s", alias, env)
			}
		}
		col, ok := documented[env]
		if !ok {
			t.Errorf("README does not document %s", env)
			continue
		}
		if def := f.Tag.Get("default"); def != "" && !strings.Contains(col, "`"+def+"`") {
			t.Errorf("README gives %s the default %q; the code has %q", env, strings.TrimSpace(col), def)
		}
	}
	for env := range documented {
		if !read[env] {
			t.Errorf("README documents %s, which the service does not read", env)
		}
	}
}
