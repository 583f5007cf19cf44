package lua

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rgw-nats/rgw-nats/adapter/lua/lua53"

	glua "github.com/yuin/gopher-lua"
)

// The user's own pure-Lua modules (LUA_MODULES): require("name") finds
// name.lua or name/init.lua, require("a.b") finds a/b.lua, in the
// configured directories in order, as Lua's package.path would. Every
// module file is read, translated and compiled once per version of the
// chain, together with the scripts: a changed module is reloaded with them,
// and a module that does not compile keeps the new version out, like a
// script that does not. Each state runs a module at its first require and
// keeps what it returned, as package.loaded does. A module runs in the
// state's sandbox, with the same globals and libraries as the script.
// Nothing is read from the file system when a script calls require.

// Bounds of what the module directories may hold.
const (
	maxModuleFiles = 1000
	maxModuleBytes = 16 << 20 // in all
	maxModuleDepth = 8
)

// WithModuleDirs sets the directories in which require finds the user's
// pure-Lua modules (LUA_MODULES, directories separated by ':'). Modules
// with the names of lunajson and cjson replace the built-in ones; rgwnats
// and nats cannot be replaced.
func WithModuleDirs(dirs ...string) Option {
	return func(c *config) { c.moduleDirs = append([]string(nil), dirs...) }
}

// builtinOnly are the host's modules that no user module may replace.
func builtinOnly(name string) bool { return name == "rgwnats" || name == "nats" }

// moduleSet is the compiled modules of one version of the chain.
type moduleSet struct {
	protos map[string]*glua.FunctionProto
	cLibs  map[string]string // names only found as C libraries (.so), and where
}

// validModuleName accepts dotted names of letters, digits, '_' and '-':
// no empty part, so no "..", no path separator, nothing absolute.
func validModuleName(name string) bool {
	if name == "" || len(name) > 200 {
		return false
	}
	for _, part := range strings.Split(name, ".") {
		if part == "" {
			return false
		}
		for i := 0; i < len(part); i++ {
			c := part[i]
			if !(lua53.IsNameStart(c) || isDigit(c) || c == '-') {
				return false
			}
		}
	}
	return true
}

// readFiles reads one version of everything a chain runs: the scripts,
// then the module files.
func (e *Engine) readFiles() ([]scriptFile, error) {
	files, err := readScripts(e.path)
	if err != nil {
		return nil, err
	}
	mods, err := readModules(e.cfg.moduleDirs)
	if err != nil {
		return nil, err
	}
	return append(files, mods...), nil
}

// readModules lists the *.lua files of the module directories, following
// symbolic links (a ConfigMap volume), skipping hidden entries, each with
// the module name that finds it. A name found twice keeps the first: an
// earlier directory wins, and in one directory name.lua wins over
// name/init.lua. C libraries (*.so) are remembered only to say why
// require cannot load them.
func readModules(dirs []string) ([]scriptFile, error) {
	var files []scriptFile
	seen := map[string]bool{}
	total := 0
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		if fi, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("lua: module directory: %w", err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("lua: module directory %s is not a directory", dir)
		}
		var found []scriptFile
		var walk func(rel string, depth int) error
		walk = func(rel string, depth int) error {
			entries, err := os.ReadDir(filepath.Join(dir, rel))
			if err != nil {
				return fmt.Errorf("lua: module directory: %w", err)
			}
			for _, de := range entries {
				name := de.Name()
				if strings.HasPrefix(name, ".") {
					continue
				}
				r := filepath.Join(rel, name)
				full := filepath.Join(dir, r)
				fi, err := os.Stat(full)
				if err != nil {
					return fmt.Errorf("lua: module: %w", err)
				}
				if fi.IsDir() {
					if depth >= maxModuleDepth {
						return fmt.Errorf("lua: module directory %s nests deeper than %d levels", full, maxModuleDepth)
					}
					if err := walk(r, depth+1); err != nil {
						return err
					}
					continue
				}
				var mod string
				switch {
				case strings.HasSuffix(name, ".lua"):
					mod = strings.TrimSuffix(filepath.ToSlash(r), ".lua")
				case strings.HasSuffix(name, ".so"):
					mod = strings.TrimSuffix(filepath.ToSlash(r), ".so")
				default:
					continue
				}
				mod = strings.TrimSuffix(mod, "/init")
				mod = strings.ReplaceAll(mod, "/", ".")
				if !validModuleName(mod) {
					continue
				}
				if strings.HasSuffix(name, ".so") {
					found = append(found, scriptFile{name: filepath.ToSlash(r), path: full, module: mod, cLib: true})
					continue
				}
				if len(found) >= maxModuleFiles {
					return fmt.Errorf("lua: the module directories hold more than %d files", maxModuleFiles)
				}
				if total += int(fi.Size()); total > maxModuleBytes {
					return fmt.Errorf("lua: the modules are larger than %d bytes in all", maxModuleBytes)
				}
				src, err := os.ReadFile(full)
				if err != nil {
					return fmt.Errorf("lua: module: %w", err)
				}
				found = append(found, scriptFile{name: filepath.ToSlash(r), path: full, src: src, module: mod})
			}
			return nil
		}
		if err := walk("", 0); err != nil {
			return nil, err
		}
		// name.lua before name/init.lua; ReadDir's order is by name, so a
		// file "x.lua" and a directory "x" are seen in either order.
		for _, pass := range []bool{false, true} {
			for _, f := range found {
				isInit := strings.HasSuffix(f.name, "/init.lua") || f.name == "init.lua"
				if isInit != pass || seen[f.module] {
					continue
				}
				seen[f.module] = true
				files = append(files, f)
			}
		}
	}
	return files, nil
}

// compileModules compiles the module files of files and returns the
// scripts alone.
func compileModules(files []scriptFile) ([]scriptFile, *moduleSet, error) {
	ms := &moduleSet{protos: map[string]*glua.FunctionProto{}, cLibs: map[string]string{}}
	var scripts []scriptFile
	for _, f := range files {
		switch {
		case f.module == "":
			scripts = append(scripts, f)
		case f.cLib:
			ms.cLibs[f.module] = f.path
		case builtinOnly(f.module):
			return nil, nil, fmt.Errorf("lua: module %s (%s) would replace the built-in module %s; rename it", f.module, f.path, f.module)
		default:
			_, proto, err := compileChunk(f.name, f.src)
			if err != nil {
				return nil, nil, fmt.Errorf("lua: module %s: %w", f.module, err)
			}
			ms.protos[f.module] = proto
		}
	}
	return scripts, ms, nil
}

// requireModule loads a user module into this state (once) and pushes
// what it returned; false when no user module has that name.
func (st *state) requireModule(L *glua.LState, name string) bool {
	if builtinOnly(name) {
		return false
	}
	if v, ok := st.loaded[name]; ok {
		if v == nil {
			L.RaiseError("loop or previous error loading module '%s'", name)
		}
		L.Push(v)
		return true
	}
	ms := st.s.mods
	if ms == nil {
		return false
	}
	proto, ok := ms.protos[name]
	if !ok {
		return false
	}
	if st.loaded == nil {
		st.loaded = map[string]glua.LValue{}
	}
	st.loaded[name] = nil // loading
	fn := L.NewFunctionFromProto(proto)
	fn.Env = st.globals
	L.Push(fn)
	L.Push(glua.LString(name))
	L.Call(1, 1)
	v := L.Get(-1)
	if v == glua.LNil {
		L.Pop(1)
		v = glua.LTrue
		L.Push(v)
	}
	st.loaded[name] = v
	return true
}

// moduleMissing explains why require found nothing.
func (st *state) moduleMissing(L *glua.LState, name string) {
	if !validModuleName(name) {
		L.RaiseError("module %q is not available: module names are like \"json\" or \"acme.util\" (letters, digits, '_' and '-', parts separated by '.')", name)
	}
	if ms := st.s.mods; ms != nil {
		if p, ok := ms.cLibs[name]; ok {
			L.RaiseError("module %q is a C library (%s): only pure-Lua modules can be loaded", name, p)
		}
	}
	where := "rgwnats, nats, lunajson and cjson"
	if len(st.s.eng.cfg.moduleDirs) > 0 {
		where += ", and " + strings.ReplaceAll(name, ".", "/") + ".lua or " + strings.ReplaceAll(name, ".", "/") + "/init.lua in " + strings.Join(st.s.eng.cfg.moduleDirs, ":")
	}
	L.RaiseError("module %q is not available: require knows %s", name, where)
}
