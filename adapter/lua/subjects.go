package lua

import (
	"reflect"
	"slices"

	"github.com/yuin/gopher-lua/ast"
)

// Loaded describes a version of the scripts that was just swapped in (at
// New and at every reload), for WithOnLoad.
type Loaded struct {
	Scripts []string // file names, in the order they run
	// Subjects are the literal subjects the scripts publish to or route
	// to (client:publish("S", ...), rgwnats.publish("S", ...),
	// ev.nats.subject = "S"): the service checks them against the streams
	// at load, so that a subject no stream captures is reported before the
	// first event fails on it. Subjects built at run time are not known.
	Subjects []string
}

// WithOnLoad calls fn after each successful load of the scripts, the first
// one included. fn must not block for long: reloads wait for it.
func WithOnLoad(fn func(Loaded)) Option { return func(c *config) { c.onLoad = fn } }

// staticSubjects finds the literal subjects of a chunk.
func staticSubjects(chunk []ast.Stmt) []string {
	var out []string
	add := func(e ast.Expr) {
		if s, ok := e.(*ast.StringExpr); ok && !slices.Contains(out, s.Value) {
			out = append(out, s.Value)
		}
	}
	walkAST(reflect.ValueOf(chunk), func(n any) {
		switch n := n.(type) {
		case *ast.FuncCallExpr:
			if len(n.Args) == 0 {
				return
			}
			if n.Method == "publish" {
				add(n.Args[0])
			} else if get, ok := n.Func.(*ast.AttrGetExpr); ok && isString(get.Key, "publish") {
				add(n.Args[0])
			}
		case *ast.AssignStmt:
			for i, lhs := range n.Lhs {
				get, ok := lhs.(*ast.AttrGetExpr)
				if !ok || !isString(get.Key, "subject") || i >= len(n.Rhs) {
					continue
				}
				if inner, ok := get.Object.(*ast.AttrGetExpr); ok && isString(inner.Key, "nats") {
					add(n.Rhs[i])
				}
			}
		}
	})
	return out
}

func isString(e ast.Expr, s string) bool {
	str, ok := e.(*ast.StringExpr)
	return ok && str.Value == s
}

// walkAST calls visit on every node below v. The AST is a tree of pointers
// to structs, slices and interfaces; reflection keeps this independent of
// the node types (it runs once per load, never per event).
func walkAST(v reflect.Value, visit func(any)) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return
		}
		if v.Kind() == reflect.Pointer && v.CanInterface() {
			visit(v.Interface())
		}
		walkAST(v.Elem(), visit)
	case reflect.Slice:
		for i := range v.Len() {
			walkAST(v.Index(i), visit)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				walkAST(v.Field(i), visit)
			}
		}
	}
}
