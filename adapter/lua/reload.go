package lua

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

type scriptFile struct {
	name   string // base name: what errors and logs show
	path   string
	src    []byte
	module string // the module name of a module file (modules.go); "" for a script
	cLib   bool   // a C library module, which cannot be loaded
}

// readScripts reads the script at path, or every *.lua file of the directory
// at path in name order. Symbolic links are followed, so that a Kubernetes
// ConfigMap volume (file -> ..data/file, ..data -> ..<timestamp>) reads
// whatever version ..data points to at the moment; its hidden entries are
// skipped.
func readScripts(path string) ([]scriptFile, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("lua: script: %w", err)
	}
	if !fi.IsDir() {
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("lua: script: %w", err)
		}
		return []scriptFile{{name: filepath.Base(path), path: path, src: src}}, nil
	}
	entries, err := os.ReadDir(path) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("lua: script directory: %w", err)
	}
	var files []scriptFile
	for _, de := range entries {
		name := de.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".lua") {
			continue
		}
		full := filepath.Join(path, name)
		st, err := os.Stat(full)
		if err != nil {
			return nil, fmt.Errorf("lua: script: %w", err)
		}
		if st.IsDir() {
			continue
		}
		src, err := os.ReadFile(full)
		if err != nil {
			return nil, fmt.Errorf("lua: script: %w", err)
		}
		files = append(files, scriptFile{name: name, path: full, src: src})
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("lua: no *.lua file in directory %s", path)
	}
	return files, nil
}

func fingerprint(files []scriptFile) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%s\x00%d\x00", f.module, f.name, len(f.src))
		h.Write(f.src)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// load compiles every file and checks it by creating its first states, so
// that a version that cannot run is refused before it serves.
func (e *Engine) load(ctx context.Context, files []scriptFile) (*chain, error) {
	c := &chain{fingerprint: fingerprint(files)}
	warm := min(e.cfg.poolSize, runtime.GOMAXPROCS(0))
	files, mods, err := compileModules(files)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("lua: loading %s: %w", f.name, err)
		}
		s, err := compileScript(e, f)
		if err != nil {
			return nil, err
		}
		s.mods = mods
		for range warm {
			st, err := s.warmState()
			if err != nil {
				c.scripts = append(c.scripts, s)
				c.retire()
				return nil, err
			}
			s.put(st)
		}
		c.scripts = append(c.scripts, s)
	}
	return c, nil
}

// loaded tells WithOnLoad's function about a version now serving.
func (e *Engine) loaded(c *chain) {
	if e.cfg.onLoad == nil {
		return
	}
	var l Loaded
	for _, s := range c.scripts {
		l.Scripts = append(l.Scripts, s.name)
		for _, subj := range s.subjects {
			if !slices.Contains(l.Subjects, subj) {
				l.Subjects = append(l.Subjects, subj)
			}
		}
	}
	e.cfg.onLoad(l)
}

func (c *chain) retire() {
	for _, s := range c.scripts {
		s.retire()
	}
}

func (e *Engine) watch() {
	defer close(e.done)
	t := time.NewTicker(e.cfg.reload)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			_ = e.Reload(context.Background())
		}
	}
}

// Reload checks the script files now and, when they changed, compiles the new
// version and swaps it in: calls under way finish on the old version, new
// calls use the new one. A version that fails to load is logged once and
// returned as an error, and the old version keeps serving. The watcher
// started by New calls Reload on every tick.
func (e *Engine) Reload(ctx context.Context) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	cur := e.chain.Load()
	if cur == nil {
		return ErrClosed
	}
	files, err := e.readFiles()
	if err != nil {
		e.rejectVersion("read:"+err.Error(), err)
		return err
	}
	fp := fingerprint(files)
	if fp == cur.fingerprint {
		e.lastFailed = ""
		return nil
	}
	if fp == e.lastFailed {
		return fmt.Errorf("lua: the changed scripts still fail to load; version %.12s keeps serving", cur.fingerprint)
	}
	c, err := e.load(ctx, files)
	if err != nil {
		e.rejectVersion(fp, err)
		return err
	}
	e.lastFailed = ""
	e.chain.Store(c)
	cur.retire()
	e.loaded(c)
	e.stats.reloads.Add(1)
	e.cfg.logger.Info("lua: scripts reloaded", "path", e.path, "scripts", len(c.scripts), "version", c.fingerprint[:12])
	return nil
}

// rejectVersion logs a version that cannot load, once per distinct version.
func (e *Engine) rejectVersion(key string, err error) {
	if key == e.lastFailed {
		return
	}
	e.lastFailed = key
	e.stats.reloadErrors.Add(1)
	e.cfg.logger.Error("lua: changed scripts rejected, the previous version keeps serving", "path", e.path, "error", err)
}
