// Package lua runs the users' Lua transforms on CloudEvents: each script is
// parsed and compiled once, and a pool of sandboxed gopher-lua states calls
// its transform function once per event, under a deadline. A script sees the
// event as an object it can change, drop, re-route or fan out, a helper module
// (require "rgwnats": JSON, SHA-256, HMAC, base64, time, logging, subject
// tokens), and the globals and modules of Ceph RGW's Lua scripting (Request,
// RGW, RGWDebugLog, require "nats", "lunajson", "cjson"), so that a
// postRequest script written for RGW runs here unchanged.
//
// The RGW table behind the RGW global is a Table: a MemoryTable by default,
// as RGW keeps it, or a shared store given with WithTable (adapter/kvtable
// keeps it in NATS KV).
//
// Scripts may be written in Lua 5.3, as RGW's are: adapter/lua/lua53
// translates them at load time for gopher-lua's 5.1 parser, and the engine
// binds the helpers the translation calls and the 5.3 library (ops53.go,
// lib53.go).
//
// Scripts are reloaded when their files change (Kubernetes ConfigMap volumes
// included) without failing an event.
//
// It builds on the CloudEvents event type, adapter/rgw (the notification
// record, for Request) and adapter/subject (token escaping). It must not
// import NATS, HTTP, Knative or the rest of the pipeline: what a script
// publishes is handed back as Output values for the caller to send.
package lua
