package lua

import (
	"strings"

	glua "github.com/yuin/gopher-lua"

	"github.com/rgw-nats/rgw-nats/adapter/rgw"
	"github.com/rgw-nats/rgw-nats/adapter/subject"
)

// What RGW's Lua scripting offers a postRequest script, rebuilt over
// notifications: Request, RGWDebugLog, the shared RGW table and the nats,
// lunajson and cjson modules.

func (st *state) initRGW() {
	L := st.L
	G := st.globals
	step := func(sign float64) *glua.LFunction {
		return L.NewFunction(func(L *glua.LState) int {
			k := L.CheckString(1)
			n := 1.0
			if L.GetTop() >= 2 {
				n = float64(L.CheckNumber(2))
			}
			L.Push(st.tableAdd(L, k, sign*n))
			return 1
		})
	}
	inc, dec := step(1), step(-1)
	rgwTable := L.NewTable()
	rgwTable.Metatable = st.protectedMeta(map[string]glua.LValue{
		"__index": L.NewFunction(func(L *glua.LState) int {
			k := L.CheckString(2)
			switch k {
			case "increment":
				L.Push(inc)
			case "decrement":
				L.Push(dec)
			default:
				L.Push(st.tableGet(L, k))
			}
			return 1
		}),
		"__newindex": L.NewFunction(func(L *glua.LState) int {
			st.tableSet(L, L.CheckString(2), L.Get(3))
			return 0
		}),
		"__pairs": L.NewFunction(func(L *glua.LState) int {
			snap := st.tableSnapshot(L)
			t := L.CreateTable(0, len(snap))
			for k, v := range snap {
				t.RawSetString(k, toLua(v))
			}
			L.Push(G.RawGetString("next"))
			L.Push(t)
			L.Push(glua.LNil)
			return 3
		}),
		// rawset and table.insert must not put keys beside the store.
		"__readonly": glua.LTrue,
	})
	G.RawSetString("RGW", rgwTable)
	st.reqMT = st.requestMeta()
	G.RawSetString("RGWDebugLog", L.NewFunction(func(L *glua.LState) int {
		st.log(L, levelDebug, L.ToStringMeta(L.Get(1)).String(), nil)
		return 0
	}))

	// lua-nats: connect hands back the service's connection, so a script
	// that connects on every run costs nothing; publish adds an output.
	client := L.NewTable()
	noop := func(ret glua.LValue) *glua.LFunction {
		return L.NewFunction(func(L *glua.LState) int {
			if ret == nil {
				return 0
			}
			L.Push(ret)
			return 1
		})
	}
	cannot := func(what string) *glua.LFunction {
		return L.NewFunction(func(L *glua.LState) int {
			L.RaiseError("nats: %s is not available in a transform: it runs once per event and cannot consume messages", what)
			return 0
		})
	}
	client.RawSetString("connect", noop(glua.LTrue))
	client.RawSetString("close", noop(nil))
	client.RawSetString("set_auth", noop(nil))
	client.RawSetString("set_verbose", noop(nil))
	client.RawSetString("set_pedantic", noop(nil))
	client.RawSetString("ping", noop(glua.LTrue))
	client.RawSetString("publish", L.NewFunction(st.natsPublish))
	client.RawSetString("subscribe", cannot("subscribe"))
	client.RawSetString("unsubscribe", cannot("unsubscribe"))
	client.RawSetString("wait", cannot("wait"))
	client.RawSetString("request", cannot("request"))
	clientRO := st.readOnly("nats client", client)
	st.modules["nats"] = st.readOnly("nats", st.fields(map[string]glua.LValue{
		"connect": L.NewFunction(func(L *glua.LState) int {
			L.Push(clientRO)
			return 1
		}),
	}))
}

// natsPublish is client:publish(subject, payload).
func (st *state) natsPublish(L *glua.LState) int {
	base := 1
	if _, ok := L.Get(1).(*glua.LTable); ok {
		base = 2 // method call: the client comes first
	}
	subj := L.CheckString(base)
	var payload []byte
	switch v := L.Get(base + 1).(type) {
	case *glua.LNilType:
	case glua.LString:
		payload = []byte(v)
	case glua.LNumber:
		payload = []byte(v.String())
	default:
		L.RaiseError("nats publish: the payload must be a string, not a %s (encode tables with lunajson.encode)", v.Type())
	}
	st.publish(L, subj, payload, nil)
	return 0
}

// publish adds a raw output to the running call.
func (st *state) publish(L *glua.LState, subj string, payload []byte, header map[string][]string) {
	if st.cur == nil {
		L.RaiseError("publish: only possible while an event is processed, not when the script loads")
	}
	if !subject.Valid(subj) {
		L.RaiseError("publish: %q is not a valid NATS subject (escape values with rgwnats.token)", subject.Short(subj))
	}
	st.charge(L, 1, len(payload)+headerSize(header))
	st.cur.outputs = append(st.cur.outputs, Output{Raw: payload, Subject: subj, Header: header})
}

func (st *state) fields(m map[string]glua.LValue) *glua.LTable {
	t := st.L.CreateTable(0, len(m))
	for k, v := range m {
		t.RawSetString(k, v)
	}
	return t
}

// requestFields maps the lower-cased names of Request's fields to their
// spelling: RGW matches field names without regard to case.
var requestFields = func() map[string]string {
	m := make(map[string]string)
	for _, f := range []string{
		"RGWOp", "Id", "RGWId", "Time", "Dialect", "ZoneGroup", "Name", "User", "Tenant",
		"Bucket", "Object", "Size", "Instance", "HTTP", "Metadata", "Tags", "Response",
		"HTTPStatusCode", "ObjectOwner",
	} {
		m[strings.ToLower(f)] = f
	}
	return m
}()

// rgwOps maps event names to the RGW operation that causes them.
var rgwOps = map[string]string{
	"ObjectCreated:Put":                     "put_obj",
	"ObjectCreated:Post":                    "post_obj",
	"ObjectCreated:Copy":                    "copy_obj",
	"ObjectCreated:CompleteMultipartUpload": "complete_multipart",
	"ObjectRemoved:Delete":                  "delete_obj",
	"ObjectRemoved:DeleteMarkerCreated":     "delete_obj",
}

// request returns the Request table of the running call, built on first use
// from the notification record in the event's data. Fields a notification
// cannot fill are nil; for an event that is not an RGW notification, all are.
func (st *state) request() glua.LValue {
	c := st.cur
	if c == nil {
		return glua.LNil
	}
	if c.request != nil {
		return c.request
	}
	L := st.L
	obj := func(kv ...any) *glua.LTable {
		t := L.CreateTable(0, len(kv)/2)
		for i := 0; i < len(kv); i += 2 {
			switch v := kv[i+1].(type) {
			case string:
				t.RawSetString(kv[i].(string), glua.LString(v))
			case glua.LValue:
				t.RawSetString(kv[i].(string), v)
			}
		}
		t.Metatable = st.reqMT
		return t
	}
	rec, ok := rgw.FromData(c.in.Event.Data())
	if !ok {
		c.request = obj()
		return c.request
	}
	user := func(principal string) *glua.LTable {
		tenant, id, found := strings.Cut(principal, "$")
		if !found {
			tenant, id = "", principal
		}
		return obj("Id", id, "Tenant", tenant)
	}
	// arn:aws:s3:<zonegroup>:<tenant>:<bucket>, else the owner's tenant.
	bucketTenant := ""
	if parts := strings.Split(rec.S3.Bucket.ARN, ":"); len(parts) == 6 {
		bucketTenant = parts[4]
	}
	if t, _, ok := strings.Cut(rec.S3.Bucket.OwnerIdentity.PrincipalID, "$"); ok && bucketTenant == "" {
		bucketTenant = t
	}
	var reqTime glua.LValue = glua.LNil
	if t, err := rec.Time(); err == nil {
		reqTime = glua.LString(t.UTC().Format("2006-01-02 15:04:05"))
	}
	var op glua.LValue = glua.LNil
	if o, ok := rgwOps[rec.Name()]; ok {
		op = glua.LString(o)
	}
	metadata := L.NewTable()
	for _, kv := range rec.S3.Object.Metadata {
		if strings.HasPrefix(strings.ToLower(kv.Key), "x-amz-meta-") {
			metadata.RawSetString(kv.Key, glua.LString(kv.Val))
		}
	}
	tags := L.NewTable()
	for _, kv := range rec.S3.Object.Tags {
		tags.RawSetString(kv.Key, glua.LString(kv.Val))
	}
	c.request = obj(
		"RGWOp", op,
		"Id", rec.ResponseElements.RequestID,
		"RGWId", rec.ResponseElements.HostID,
		"Time", reqTime,
		"Dialect", "s3", // as RGW spells it (measured on Pacific 16.2.15)
		"ZoneGroup", obj("Name", rec.AWSRegion),
		"User", user(rec.UserIdentity.PrincipalID),
		// Pacific has no Request.User (reading it is an error there): its
		// scripts find the writer of an object as ObjectOwner.User.
		"ObjectOwner", obj("User", user(rec.UserIdentity.PrincipalID)),
		"Bucket", obj(
			"Name", rec.S3.Bucket.Name,
			"Id", rec.S3.Bucket.ID,
			"Tenant", bucketTenant,
			"User", user(rec.S3.Bucket.OwnerIdentity.PrincipalID),
		),
		"Object", obj(
			"Name", rec.S3.Object.Key,
			"Size", glua.LNumber(rec.S3.Object.Size),
			"Instance", rec.S3.Object.VersionID,
		),
		"HTTP", obj("Metadata", metadata),
		"Tags", tags,
		"Response", obj("HTTPStatusCode", glua.LNumber(200)),
	)
	return c.request
}

// requestMeta builds the metatable of Request's tables: a read with another
// spelling of a field name finds the field.
func (st *state) requestMeta() *glua.LTable {
	return st.protectedMeta(map[string]glua.LValue{
		"__index": st.L.NewFunction(func(L *glua.LState) int {
			t := L.CheckTable(1)
			if k, ok := L.Get(2).(glua.LString); ok {
				if name, ok := requestFields[strings.ToLower(string(k))]; ok && name != string(k) {
					L.Push(t.RawGetString(name))
					return 1
				}
			}
			return 0
		}),
	})
}
