package rgw

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rgw-nats/rgw-nats/samples/events"
)

// recordBytes cuts the single record out of an envelope as it appears in the
// file, for comparison with Record.Raw.
func recordBytes(tb testing.TB, body []byte) []byte {
	tb.Helper()
	open := bytes.IndexByte(body, '[')
	end := bytes.LastIndexByte(body, ']')
	if open < 0 || end < open {
		tb.Fatalf("fixture is not an envelope: %.60s", body)
	}
	return bytes.TrimSpace(body[open+1 : end])
}

// want is what a fixture must decode to.
type want struct {
	version, region, eventTime, eventName, name string
	principal, requestID, hostID                string
	configID, bucket, bucketID, arn, owner      string
	key                                         string
	size                                        int64
	etag, versionID, sequencer                  string
	metadata, tags                              []KeyVal
	eventID, opaque                             string
	time                                        time.Time
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

const (
	pacificRegion = "9a5c78a5-252c-4931-9474-8341a5f09156"
	pacificETag   = "8dd5067d1c62a18c414da9ef1f1dbde6"
	sha256Empty   = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	// The two Tentacle clusters the captures came from.
	tentacleRegion = "cdbeaa60-2f6b-449c-a510-57c052192038"
	tentacleCEP    = "12763751-8c39-438a-86ce-40465ad3ccf7"
)

// tentacle fills in what every Tentacle 20.2.4 capture shares.
func tentacle(w want) want {
	w.version, w.region = "2.2", "default"
	w.principal, w.owner = "tester", "tester"
	w.hostID = "4117-default-default"
	w.arn = "arn:aws:s3:default::" + w.bucket
	w.eventName = w.name
	if w.tags == nil {
		w.tags = []KeyVal{}
	}
	if w.metadata == nil {
		w.metadata = []KeyVal{}
	}
	return w
}

// pacific fills in what every Pacific 16.2.15 capture shares.
func pacific(w want) want {
	w.version, w.region = "2.2", ""
	w.principal, w.owner = "tester", "tester"
	w.requestID = pacificRegion + ".4114." + w.requestID
	w.hostID = "1012-default-default"
	w.bucketID = pacificRegion + ".4116." + w.bucketID
	w.arn = "arn:aws:s3:::" + w.bucket
	w.eventName = w.name
	if w.etag == "" {
		w.etag = pacificETag
	}
	if w.size == 0 {
		w.size = 24
	}
	if w.opaque == "" {
		w.opaque = "np-opaque"
	}
	return w
}

var fixtureWants = map[string]want{
	"docs-example-lenient.json": {
		version: "2.1", region: "zonegroup1",
		eventTime: "2019-11-22T13:47:35.124724Z", time: utc("2019-11-22T13:47:35.124724Z"),
		eventName: "ObjectCreated:Put", name: "ObjectCreated:Put",
		principal: "tester", owner: "tester",
		requestID: "503a4c37-85eb-47cd-8681-2817e80b4281.5330.903595", hostID: "14d2-zone1-zonegroup1",
		configID: "mynotif1", bucket: "mybucket1", bucketID: "503a4c37-85eb-47cd-8681-2817e80b4281.5332.38",
		arn: "arn:aws:s3:zonegroup1::mybucket1",
		key: "myimage1.jpg", size: 1024, // sent as the string "1024"
		etag: "37b51d194a7513e45b56f6524f2d51f2", sequencer: "F7E6D75DC742D108",
		metadata: []KeyVal{}, tags: []KeyVal{},
		eventID: "", opaque: "me@example.com",
	},
	"downstream-xraylab-put-capture.json": {
		version: "2.2", region: "",
		// a space instead of the T
		eventTime: "2021-02-19 02:03:08.330496Z", time: utc("2021-02-19T02:03:08.330496Z"),
		eventName: "s3:ObjectCreated:Put", name: "ObjectCreated:Put",
		principal: "xraylab-0001", owner: "xraylab-0001",
		requestID: "f089746f-485e-410a-990a-e00f621fcdc3.24146.351", hostID: "5e52-s3a-s3a",
		configID: "xray-images", bucket: "xraylab-0001", bucketID: "f089746f-485e-410a-990a-e00f621fcdc3.24152.1",
		arn: "arn:aws:s3:::xraylab-0001",
		key: "demo_Micheal Phillips_6580_1947-05-22_2017-04-27.jpeg", size: 108622,
		etag: "819c1e1c1b4c7b9853301ba2e6c300f1", sequencer: "5C1C2F6049974614", // sent as "etag"
		metadata: []KeyVal{
			{"x-amz-content-sha256", "f7d632b7b02aeb97248e20e32c02dc0d2a8336927cbe487dc4d218dd1864e775"},
			{"x-amz-date", "20210219T020308Z"},
		},
		tags:    []KeyVal{},
		eventID: "1613700188.340170.819c1e1c1b4c7b9853301ba2e6c300f1", opaque: "",
	},
	"octopus-put-capture.json": {
		version: "2.2", region: "",
		eventTime: "2020-04-18T13:11:48.559808Z", time: utc("2020-04-18T13:11:48.559808Z"),
		eventName: "s3:ObjectCreated:Put", name: "ObjectCreated:Put",
		principal: "testid", owner: "testid",
		requestID: "e7c7e41c-7b8a-494b-85b7-39327d069841.4200.27", hostID: "1068-default-default",
		configID: "manasnot", bucket: "manasbucket", bucketID: "e7c7e41c-7b8a-494b-85b7-39327d069841.4202.1",
		arn: "arn:aws:s3:::manasbucket",
		key: "p.py", size: 1575,
		etag: "2dd16b058f745ade156d77437962d4e4", sequencer: "95FC9A5E150EFA28",
		metadata: []KeyVal{
			{"x-amz-content-sha256", "d654ec71963bd238455a27993bc37ac12e625891f3cd4b9971226aeb176fec28"},
			{"x-amz-date", "20200418T131148Z"},
			{"x-amz-meta-s3cmd-attrs", "atime:1587137850/ctime:1584684358/gid:1000/gname:manas/md5:2dd16b058f745ade156d77437962d4e4/mode:33188/mtime:1584684358/uid:1000/uname:manas"},
			{"x-amz-storage-class", "STANDARD"},
		},
		tags:    []KeyVal{},
		eventID: "1587215509.687476.2dd16b058f745ade156d77437962d4e4", opaque: "manasgupta1109@gmail.com",
	},
	"reef-put-capture.json": {
		version: "2.2", region: "default",
		eventTime: "2024-04-21T10:03:18.419013Z", time: utc("2024-04-21T10:03:18.419013Z"),
		eventName: "ObjectCreated:Put", name: "ObjectCreated:Put",
		principal: "user", owner: "user",
		requestID: "89759221-f520-4594-a8af-8633d52181bd.14369.13245020851017049375", hostID: "3821-default-default",
		configID: "HTTPNotification", bucket: "jayanth", bucketID: "89759221-f520-4594-a8af-8633d52181bd.14371.2",
		arn: "arn:aws:s3:default::jayanth",
		key: "notification.json", size: 177,
		etag: "a60023221945e53a31f07df71f37f032", sequencer: "66E42466712CA919",
		metadata: []KeyVal{
			{"x-amz-meta-s3cmd-attrs", "atime:1713693750/ctime:1713693688/gid:0/gname:root/md5:a60023221945e53a31f07df71f37f032/mode:33188/mtime:1713693688/uid:0/uname:root"},
		},
		tags:    []KeyVal{},
		eventID: "1713693798.430517.a60023221945e53a31f07df71f37f032", opaque: "",
	},
	"pacific-16.2.15/copy.json": pacific(want{
		eventTime: "2026-11-24T21:14:30.222260Z", time: utc("2026-11-24T21:14:30.22226Z"),
		name: "ObjectCreated:Copy", requestID: "4961071087779170056",
		configID: "main-created", bucket: "nb-main", bucketID: "1",
		key: "copies/report-copy.txt", sequencer: "36FE056B7C5A6C0D",
		metadata: []KeyVal{
			{"x-amz-content-sha256", sha256Empty},
			{"x-amz-copy-source", "nb-main/docs/report.txt"},
			{"x-amz-date", "20261124T211430Z"},
			{"x-amz-meta-color", "blue"},
			{"x-amz-meta-owner", "alice"},
		},
		tags:    []KeyVal{{"env", "dev"}, {"team", "x"}},
		eventID: "1795554870.225204." + pacificETag,
	}),
	"pacific-16.2.15/delete.json": pacific(want{
		eventTime: "2026-11-24T21:14:34.704916Z", time: utc("2026-11-24T21:14:34.704916Z"),
		name: "ObjectRemoved:Delete", requestID: "135225747725698417",
		configID: "main-removed", bucket: "nb-main", bucketID: "1",
		key: "plain.bin", sequencer: "3AFE056B6D42042A",
		metadata: []KeyVal{{"x-amz-content-sha256", sha256Empty}, {"x-amz-date", "20261124T211434Z"}},
		tags:     []KeyVal{},
		eventID:  "1795554874.704922." + pacificETag,
	}),
	"pacific-16.2.15/multipart-upload.json": pacific(want{
		eventTime: "2026-11-24T21:14:20.053221Z", time: utc("2026-11-24T21:14:20.053221Z"),
		name: "ObjectCreated:CompleteMultipartUpload", requestID: "1375578640682830008",
		configID: "main-created", bucket: "nb-main", bucketID: "1",
		key: "big/multipart.bin", size: 6291456, etag: "88fc978485924ccd87ceb19c90195b35-2",
		sequencer: "2CFE056B142E2C03",
		metadata: []KeyVal{
			{"x-amz-content-sha256", "58f8c59a2db7d8fd92513579e8af70c0f40eb6f884245f2c27af31da0c02c6bc"},
			{"x-amz-date", "20261124T211420Z"},
			{"x-amz-meta-color", "green"},
		},
		tags:    []KeyVal{},
		eventID: "1795554860.053227.88fc978485924ccd87ceb19c90195b35-2",
	}),
	"pacific-16.2.15/persistent-put.json": pacific(want{
		eventTime: "2026-11-24T21:15:15.744685Z", time: utc("2026-11-24T21:15:15.744685Z"),
		name: "ObjectCreated:Put", requestID: "7804627030733802861",
		configID: "persist-all", bucket: "nb-persist", bucketID: "2",
		key: "p/one.txt", sequencer: "63FE056BA6FA7F2C",
		metadata: []KeyVal{{"x-amz-meta-color", "blue"}},
		tags:     []KeyVal{},
		eventID:  "1795554915.746584." + pacificETag, opaque: "p-opaque",
	}),
	"pacific-16.2.15/post-object-form.json": pacific(want{
		eventTime: "2026-11-24T21:14:40.853595Z", time: utc("2026-11-24T21:14:40.853595Z"),
		name: "ObjectCreated:Post", requestID: "1754757332451113468",
		configID: "post-created", bucket: "nb-post", bucketID: "6",
		key: "uploads/form.txt", sequencer: "40FE056BE5EAE032",
		metadata: []KeyVal{{"x-amz-meta-color", "purple"}},
		tags:     []KeyVal{},
		eventID:  "1795554880.853600." + pacificETag,
	}),
	"pacific-16.2.15/put-special-key.json": pacific(want{
		eventTime: "2026-11-24T21:14:13.061263Z", time: utc("2026-11-24T21:14:13.061263Z"),
		name: "ObjectCreated:Put", requestID: "12534612687945471718",
		configID: "main-created", bucket: "nb-main", bucketID: "1",
		key: "odd dir/ünïcode +plus&amp=%41.txt", sequencer: "25FE056B084DBF03",
		metadata: []KeyVal{
			{"x-amz-content-sha256", "92cfca32e261c8e5673b4a24344c86091bccfda781231452e34f6bf78e3cdfb9"},
			{"x-amz-date", "20261124T211413Z"},
		},
		tags:    []KeyVal{},
		eventID: "1795554853.062868." + pacificETag,
	}),
	"pacific-16.2.15/put-with-meta.json": pacific(want{
		eventTime: "2026-11-24T21:14:06.482503Z", time: utc("2026-11-24T21:14:06.482503Z"),
		name: "ObjectCreated:Put", requestID: "8486191301316701201",
		configID: "main-created", bucket: "nb-main", bucketID: "1",
		key: "docs/report.txt", sequencer: "1EFE056BB51EF11C",
		metadata: []KeyVal{{"x-amz-meta-color", "blue"}, {"x-amz-meta-owner", "alice"}},
		tags:     []KeyVal{{"env", "dev"}, {"team", "x"}},
		eventID:  "1795554846.485564." + pacificETag,
	}),
	"pacific-16.2.15/versioned-delete-marker.json": pacific(want{
		eventTime: "2026-11-24T21:14:45.113758Z", time: utc("2026-11-24T21:14:45.113758Z"),
		name: "ObjectRemoved:DeleteMarkerCreated", requestID: "6184805728869774033",
		configID: "ver-all", bucket: "nb-ver", bucketID: "5",
		key: "v.txt", sequencer: "45FE056B1DE4C706",
		metadata: []KeyVal{{"x-amz-content-sha256", sha256Empty}, {"x-amz-date", "20261124T211445Z"}},
		tags:     []KeyVal{},
		eventID:  "1795554885.113763." + pacificETag,
	}),
	"tentacle-20.2.4/cloudevents-put.json": tentacle(want{
		eventTime: "2026-12-01T21:25:38.159631Z", time: utc("2026-12-01T21:25:38.159631Z"),
		name: "ObjectCreated:Put", requestID: tentacleRegion + ".4117.5651020069868768041",
		configID: "ce-created", bucket: "nb-ce", bucketID: tentacleRegion + ".4117.4",
		key: "ce.txt", size: 24, etag: pacificETag, sequencer: "523B0F6BBEBA9909",
		eventID: "1796160338.161069." + pacificETag,
	}),
	"tentacle-20.2.4/multipart-upload.json": tentacle(want{
		eventTime: "2026-12-01T21:24:17.427058Z", time: utc("2026-12-01T21:24:17.427058Z"),
		name: "ObjectCreated:CompleteMultipartUpload", requestID: tentacleRegion + ".4117.10060220576985936863",
		configID: "main-created", bucket: "nb-main", bucketID: tentacleRegion + ".4117.2",
		key: "big/multipart.bin", size: 6291456, etag: "88fc978485924ccd87ceb19c90195b35-2",
		sequencer: "013B0F6BDF97D419",
		metadata:  []KeyVal{{"x-amz-meta-color", "green"}}, // only x-amz-meta-* since Reef
		tags:      []KeyVal{{"kind", "mpu"}},               // a completion carries the tags now
		eventID:   "1796160257.433362.88fc978485924ccd87ceb19c90195b35-2", opaque: "np-opaque",
	}),
	"tentacle-20.2.4/post-object-form.json": tentacle(want{
		eventTime: "0.000000", // no time: the CloudEvent takes the eventId's
		name:      "ObjectCreated:Post", requestID: tentacleRegion + ".4117.5255049754227385371",
		configID: "post-created", bucket: "nb-post", bucketID: tentacleRegion + ".4117.7",
		key: "uploads/form.txt", size: 24, etag: pacificETag, sequencer: "1D3B0F6B23447B1C",
		metadata: []KeyVal{{"x-amz-meta-color", "purple"}},
		eventID:  "1796160285.477840." + pacificETag, opaque: "np-opaque",
	}),
	"tentacle-20.2.4/versioned-delete-marker.json": tentacle(want{
		eventTime: "2026-12-01T21:24:50.637390Z", time: utc("2026-12-01T21:24:50.637390Z"),
		name: "ObjectRemoved:DeleteMarkerCreated", requestID: tentacleRegion + ".4117.8971251813578991364",
		configID: "ver-all", bucket: "nb-ver", bucketID: tentacleRegion + ".4117.6",
		key: "v.txt", size: 24, etag: pacificETag, versionID: "AJSq8YiuPc-OL1ZeHsC9OJaH2ncqnLt", // the marker's
		sequencer: "223B0F6B8DE9FD25",
		eventID:   "1796160290.637397." + pacificETag, opaque: "np-opaque",
	}),
	// One DeleteObjects request, two records: one request id, two event ids.
	"tentacle-20.2.4/ce-persistent-delete-multi-1.json": tentacle(want{
		eventTime: "2026-12-01T21:42:23.464014Z", time: utc("2026-12-01T21:42:23.464014Z"),
		name: "ObjectRemoved:Delete", requestID: tentacleCEP + ".4117.17927955963015865368",
		configID: "cep-all", bucket: "tx-cep", bucketID: tentacleCEP + ".4117.2",
		key: "cep/m1.txt", size: 6, etag: "7b48666b13c02ffd7122df4275adc002", sequencer: "3F3F0F6B4961A81B",
		eventID: "1796161343.464019.7b48666b13c02ffd7122df4275adc002",
	}),
	"tentacle-20.2.4/ce-persistent-delete-multi-2.json": tentacle(want{
		eventTime: "2026-12-01T21:42:23.464713Z", time: utc("2026-12-01T21:42:23.464713Z"),
		name: "ObjectRemoved:Delete", requestID: tentacleCEP + ".4117.17927955963015865368",
		configID: "cep-all", bucket: "tx-cep", bucketID: tentacleCEP + ".4117.2",
		key: "cep/m2.txt", size: 6, etag: "7b48666b13c02ffd7122df4275adc002", sequencer: "3F3F0F6B4901B31B",
		eventID: "1796161343.464716.7b48666b13c02ffd7122df4275adc002",
	}),
}

func TestDecodeFixtures(t *testing.T) {
	files := events.All()
	for name := range fixtureWants {
		if _, ok := files[name]; !ok {
			t.Errorf("fixture %s is described here but missing from samples/events", name)
		}
	}
	for name, body := range files {
		t.Run(name, func(t *testing.T) {
			w, ok := fixtureWants[name]
			if !ok {
				t.Fatalf("fixture %s has no expected values: add it to fixtureWants", name)
			}
			recs, err := Decode(body)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(recs) != 1 {
				t.Fatalf("got %d records, want 1", len(recs))
			}
			assertRecord(t, &recs[0], w)
			if raw := recordBytes(t, body); !bytes.Equal(recs[0].Raw, raw) {
				t.Errorf("Raw is not the record as sent:\n got %s\nwant %s", recs[0].Raw, raw)
			}

			// The same record as CephSource sends it (no envelope).
			single, err := DecodeRecord(recordBytes(t, body))
			if err != nil {
				t.Fatalf("DecodeRecord: %v", err)
			}
			assertRecord(t, &single, w)
			if rec, ok := FromData(body); !ok || rec.EventID != w.eventID || rec.S3.Object.Key != w.key {
				t.Errorf("FromData(envelope) = %q %q %v", rec.EventID, rec.S3.Object.Key, ok)
			}
			if rec, ok := FromData(recordBytes(t, body)); !ok || rec.EventID != w.eventID || rec.S3.Object.Key != w.key {
				t.Errorf("FromData(record) = %q %q %v", rec.EventID, rec.S3.Object.Key, ok)
			}
		})
	}
}

func assertRecord(t *testing.T, r *Record, w want) {
	t.Helper()
	o := &r.S3.Object
	str := []struct{ field, got, want string }{
		{"eventVersion", r.EventVersion, w.version},
		{"eventSource", r.EventSource, "ceph:s3"},
		{"awsRegion", r.AWSRegion, w.region},
		{"eventTime", r.EventTime, w.eventTime},
		{"eventName", r.EventName, w.eventName},
		{"Name()", r.Name(), w.name},
		{"userIdentity.principalId", r.UserIdentity.PrincipalID, w.principal},
		{"requestParameters.sourceIPAddress", r.RequestParameters.SourceIPAddress, ""},
		{"x-amz-request-id", r.ResponseElements.RequestID, w.requestID},
		{"x-amz-id-2", r.ResponseElements.HostID, w.hostID},
		{"s3SchemaVersion", r.S3.SchemaVersion, "1.0"},
		{"configurationId", r.S3.ConfigurationID, w.configID},
		{"bucket.name", r.S3.Bucket.Name, w.bucket},
		{"bucket.id", r.S3.Bucket.ID, w.bucketID},
		{"bucket.arn", r.S3.Bucket.ARN, w.arn},
		{"bucket.ownerIdentity", r.S3.Bucket.OwnerIdentity.PrincipalID, w.owner},
		{"object.key", o.Key, w.key},
		{"object.eTag", o.ETag, w.etag},
		{"object.versionId", o.VersionID, w.versionID},
		{"object.sequencer", o.Sequencer, w.sequencer},
		{"eventId", r.EventID, w.eventID},
		{"opaqueData", r.OpaqueData, w.opaque},
	}
	for _, s := range str {
		if s.got != s.want {
			t.Errorf("%s = %q, want %q", s.field, s.got, s.want)
		}
	}
	if o.Size != w.size {
		t.Errorf("object.size = %d, want %d", o.Size, w.size)
	}
	if !slices.Equal(o.Metadata, w.metadata) || (o.Metadata == nil) != (w.metadata == nil) {
		t.Errorf("metadata = %#v, want %#v", o.Metadata, w.metadata)
	}
	if !slices.Equal(o.Tags, w.tags) || (o.Tags == nil) != (w.tags == nil) {
		t.Errorf("tags = %#v, want %#v", o.Tags, w.tags)
	}
	tm, err := r.Time()
	if w.time.IsZero() {
		if err == nil {
			t.Errorf("Time() = %v, want an error: eventTime %q is no time", tm, r.EventTime)
		}
	} else if err != nil {
		t.Errorf("Time(): %v", err)
	} else if !tm.Equal(w.time) {
		t.Errorf("Time() = %v, want %v", tm, w.time)
	}
}

// baseRecord is a compact record in the current (Reef) form; variants edit it.
const baseRecord = `{"eventVersion":"2.2","eventSource":"ceph:s3","awsRegion":"default",` +
	`"eventTime":"2024-04-21T10:03:18.419013Z","eventName":"ObjectCreated:Put",` +
	`"userIdentity":{"principalId":"user"},"requestParameters":{"sourceIPAddress":""},` +
	`"responseElements":{"x-amz-request-id":"req-1","x-amz-id-2":"3821-default-default"},` +
	`"s3":{"s3SchemaVersion":"1.0","configurationId":"cfg","bucket":{"name":"photos",` +
	`"ownerIdentity":{"principalId":"user"},"arn":"arn:aws:s3:default::photos","id":"b-1"},` +
	`"object":{"key":"a/b.jpg","size":177,"eTag":"e1","versionId":"","sequencer":"66E42466712CA919",` +
	`"metadata":[{"key":"x-amz-meta-color","val":"blue"}],"tags":[]}},` +
	`"eventId":"1713693798.430517.e1","opaqueData":""}`

// edit replaces old, which must occur exactly once in s, by new.
func edit(tb testing.TB, s string, pairs ...string) string {
	tb.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if n := strings.Count(s, pairs[i]); n != 1 {
			tb.Fatalf("%q occurs %d times in the record, want 1", pairs[i], n)
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

func wrap(recs ...string) []byte {
	return []byte(`{"Records":[` + strings.Join(recs, ",") + `]}`)
}

func TestDecodeVariants(t *testing.T) {
	tests := []struct {
		name  string
		edits []string // pairs of old, new applied to baseRecord
		check func(t *testing.T, r *Record)
	}{
		{"eTag", nil, func(t *testing.T, r *Record) { eq(t, "eTag", r.S3.Object.ETag, "e1") }},
		{"etag spelled the Octopus way", []string{`"eTag":"e1"`, `"etag":"e1"`},
			func(t *testing.T, r *Record) { eq(t, "eTag", r.S3.Object.ETag, "e1") }},
		{"eTag wins over etag", []string{`"eTag":"e1"`, `"eTag":"e1","etag":"other"`},
			func(t *testing.T, r *Record) { eq(t, "eTag", r.S3.Object.ETag, "e1") }},
		{"empty eTag falls back to etag", []string{`"eTag":"e1"`, `"eTag":"","etag":"e2"`},
			func(t *testing.T, r *Record) { eq(t, "eTag", r.S3.Object.ETag, "e2") }},
		{"no etag at all (lifecycle)", []string{`"eTag":"e1",`, ``},
			func(t *testing.T, r *Record) { eq(t, "eTag", r.S3.Object.ETag, "") }},
		{"size as number", nil, sizeIs(177)},
		{"size as string", []string{`"size":177`, `"size":"177"`}, sizeIs(177)},
		{"size as string with spaces", []string{`"size":177`, `"size":" 177 "`}, sizeIs(177)},
		{"size zero", []string{`"size":177`, `"size":0`}, sizeIs(0)},
		{"size empty string", []string{`"size":177`, `"size":""`}, sizeIs(0)},
		{"size null", []string{`"size":177`, `"size":null`}, sizeIs(0)},
		{"size missing", []string{`"size":177,`, ``}, sizeIs(0)},
		{"size in exponent form", []string{`"size":177`, `"size":1.5e3`}, sizeIs(1500)},
		{"size beyond 32 bits", []string{`"size":177`, `"size":6291456000`}, sizeIs(6291456000)},
		{"size int64 max", []string{`"size":177`, `"size":"9223372036854775807"`}, sizeIs(9223372036854775807)},
		{"eventTime with T", nil, timeIs("2024-04-21T10:03:18.419013Z")},
		{"eventTime with a space", []string{`2024-04-21T`, `2024-04-21 `},
			timeIs("2024-04-21T10:03:18.419013Z")},
		{"eventTime with nine digits", []string{`18.419013Z`, `18.419013123Z`}, timeIs("2024-04-21T10:03:18.419013123Z")},
		{"eventTime without fraction", []string{`18.419013Z`, `18Z`}, timeIs("2024-04-21T10:03:18Z")},
		{"eventTime with offset", []string{`18.419013Z`, `18.419013+02:00`}, timeIs("2024-04-21T08:03:18.419013Z")},
		{"eventName with s3: prefix", []string{`"eventName":"ObjectCreated:Put"`, `"eventName":"s3:ObjectCreated:Put"`},
			func(t *testing.T, r *Record) {
				eq(t, "eventName", r.EventName, "s3:ObjectCreated:Put")
				eq(t, "Name()", r.Name(), "ObjectCreated:Put")
			}},
		{"eventName without prefix", nil, func(t *testing.T, r *Record) {
			eq(t, "eventName", r.EventName, "ObjectCreated:Put")
			eq(t, "Name()", r.Name(), "ObjectCreated:Put")
		}},
		{"unknown event name is data", []string{`"eventName":"ObjectCreated:Put"`, `"eventName":"Replication:Create"`},
			func(t *testing.T, r *Record) { eq(t, "Name()", r.Name(), "Replication:Create") }},
		{"empty awsRegion", []string{`"awsRegion":"default"`, `"awsRegion":""`},
			func(t *testing.T, r *Record) { eq(t, "awsRegion", r.AWSRegion, "") }},
		{"no awsRegion", []string{`"awsRegion":"default",`, ``},
			func(t *testing.T, r *Record) { eq(t, "awsRegion", r.AWSRegion, "") }},
		{"metadata with val", nil, metaIs(KeyVal{"x-amz-meta-color", "blue"})},
		{"metadata with value", []string{`"val":"blue"`, `"value":"blue"`}, metaIs(KeyVal{"x-amz-meta-color", "blue"})},
		{"val wins over value", []string{`"val":"blue"`, `"value":"red","val":"blue"`}, metaIs(KeyVal{"x-amz-meta-color", "blue"})},
		{"metadata entry without a value", []string{`,"val":"blue"`, ``}, metaIs(KeyVal{"x-amz-meta-color", ""})},
		{"metadata entry with extra members", []string{`"val":"blue"`, `"val":"blue","type":"s"`}, metaIs(KeyVal{"x-amz-meta-color", "blue"})},
		{"empty metadata", []string{`[{"key":"x-amz-meta-color","val":"blue"}]`, `[]`}, metaIs()},
		{"tags as key/val", []string{`"tags":[]`, `"tags":[{"key":"env","val":"dev"}]`}, tagsAre(KeyVal{"env", "dev"})},
		{"tags as key/value", []string{`"tags":[]`, `"tags":[{"key":"env","value":"dev"}]`}, tagsAre(KeyVal{"env", "dev"})},
		{"repeated tag keys all kept in order", []string{`"tags":[]`, `"tags":[{"key":"k","val":"1"},{"key":"k","val":"2"},{"key":"j","val":"3"}]`},
			tagsAre(KeyVal{"k", "1"}, KeyVal{"k", "2"}, KeyVal{"j", "3"})},
		{"null tags", []string{`"tags":[]`, `"tags":null`}, func(t *testing.T, r *Record) {
			if r.S3.Object.Tags != nil {
				t.Errorf("tags = %#v, want nil", r.S3.Object.Tags)
			}
		}},
		{"empty eventId", []string{`"eventId":"1713693798.430517.e1"`, `"eventId":""`},
			func(t *testing.T, r *Record) { eq(t, "eventId", r.EventID, "") }},
		{"unknown extra fields everywhere", []string{
			`"eventVersion":"2.2"`, `"eventVersion":"2.2","future":{"a":[1,2,{"b":null}]}`,
			`"s3SchemaVersion":"1.0"`, `"s3SchemaVersion":"1.0","x":1`,
			`"key":"a/b.jpg"`, `"key":"a/b.jpg","checksum":{"crc32":"x"}`,
			`"name":"photos"`, `"name":"photos","tenant":"t1"`,
		}, func(t *testing.T, r *Record) {
			eq(t, "key", r.S3.Object.Key, "a/b.jpg")
			eq(t, "bucket", r.S3.Bucket.Name, "photos")
			if !bytes.Contains(r.Raw, []byte(`"future":{"a":[1,2,{"b":null}]}`)) {
				t.Errorf("Raw lost the unknown field: %s", r.Raw)
			}
		}},
		{"unicode and escapes in the key", []string{`"key":"a/b.jpg"`, `"key":"odd dir/\u00fcn\u00efcode +plus&amp=%41.txt\n"`},
			func(t *testing.T, r *Record) {
				eq(t, "key", r.S3.Object.Key, "odd dir/ünïcode +plus&amp=%41.txt\n")
				if !bytes.Contains(r.Raw, []byte(`\u00fcn\u00efcode`)) {
					t.Errorf("Raw was re-encoded: %s", r.Raw)
				}
			}},
		{"tenant user", []string{`"principalId":"user"},"req`, `"principalId":"tenant$user"},"req`},
			func(t *testing.T, r *Record) { eq(t, "principalId", r.UserIdentity.PrincipalID, "tenant$user") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := edit(t, baseRecord, tt.edits...)
			for _, form := range []struct {
				name string
				body []byte
			}{
				{"envelope", wrap(rec)},
				{"indented envelope", []byte("{\n  \"Records\": [\n    " + rec + "\n  ]\n}\n")},
				{"single record", []byte(rec)},
			} {
				recs, err := DecodeAny(form.body)
				if err != nil {
					t.Fatalf("%s: %v", form.name, err)
				}
				if len(recs) != 1 {
					t.Fatalf("%s: %d records", form.name, len(recs))
				}
				if string(recs[0].Raw) != rec {
					t.Errorf("%s: Raw is not byte-exact:\n got %s\nwant %s", form.name, recs[0].Raw, rec)
				}
				tt.check(t, &recs[0])
			}
		})
	}
}

func eq(t *testing.T, field, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", field, got, want)
	}
}

func sizeIs(n int64) func(*testing.T, *Record) {
	return func(t *testing.T, r *Record) {
		t.Helper()
		if r.S3.Object.Size != n {
			t.Errorf("size = %d, want %d", r.S3.Object.Size, n)
		}
	}
}

func timeIs(s string) func(*testing.T, *Record) {
	return func(t *testing.T, r *Record) {
		t.Helper()
		got, err := r.Time()
		if err != nil {
			t.Fatalf("Time(): %v", err)
		}
		if want := utc(s); !got.Equal(want) {
			t.Errorf("Time() = %v, want %v", got, want)
		}
	}
}

func metaIs(kv ...KeyVal) func(*testing.T, *Record) {
	return func(t *testing.T, r *Record) {
		t.Helper()
		if !slices.Equal(r.S3.Object.Metadata, kv) {
			t.Errorf("metadata = %#v, want %#v", r.S3.Object.Metadata, kv)
		}
	}
}

func tagsAre(kv ...KeyVal) func(*testing.T, *Record) {
	return func(t *testing.T, r *Record) {
		t.Helper()
		if !slices.Equal(r.S3.Object.Tags, kv) {
			t.Errorf("tags = %#v, want %#v", r.S3.Object.Tags, kv)
		}
	}
}

func TestTimeErrors(t *testing.T) {
	for _, s := range []string{"", "yesterday", "2024-04-21", "2024-04-21T10:03:18", "2024-04-21X10:03:18Z", "2024-13-01T00:00:00Z"} {
		r := Record{EventTime: s}
		_, err := r.Time()
		if err == nil {
			t.Errorf("Time(%q): no error", s)
			continue
		}
		if !strings.Contains(err.Error(), "event time") || strings.ContainsAny(err.Error(), "\r\n") {
			t.Errorf("Time(%q): unhelpful error %q", s, err)
		}
	}
}

func TestDecodeSeveralRecords(t *testing.T) {
	second := edit(t, baseRecord, `"key":"a/b.jpg"`, `"key":"c.txt"`, `"eventId":"1713693798.430517.e1"`, `"eventId":"2"`)
	body := []byte("{\"Records\":[ " + baseRecord + " ,\n\t" + second + "\n], \"extra\": true}")
	recs, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("got %d records, want 2", len(recs))
	}
	for i, want := range []string{baseRecord, second} {
		if string(recs[i].Raw) != want {
			t.Errorf("record %d Raw = %s, want %s", i, recs[i].Raw, want)
		}
	}
	eq(t, "key 0", recs[0].S3.Object.Key, "a/b.jpg")
	eq(t, "key 1", recs[1].S3.Object.Key, "c.txt")
	eq(t, "eventId 1", recs[1].EventID, "2")

	any, err := DecodeAny(body)
	if err != nil || len(any) != 2 {
		t.Fatalf("DecodeAny: %d records, %v", len(any), err)
	}
	if _, ok := FromData(body); ok {
		t.Error("FromData accepted an envelope of two records")
	}
}

func TestDecodeErrors(t *testing.T) {
	noName := edit(t, baseRecord, `"eventName":"ObjectCreated:Put",`, ``)
	emptyName := edit(t, baseRecord, `"eventName":"ObjectCreated:Put"`, `"eventName":""`)
	noBucket := edit(t, baseRecord, `"name":"photos",`, ``)
	noS3 := `{"eventName":"ObjectCreated:Put","eventId":"1"}`
	tests := []struct {
		name     string
		body     string
		sentinel error
		mention  []string // the message must say these
	}{
		{"empty body", ``, ErrNotNotification, []string{"invalid JSON"}},
		{"not JSON", `hello`, ErrNotNotification, []string{"invalid JSON", "byte"}},
		{"truncated JSON", string(wrap(baseRecord))[:100], ErrNotNotification, []string{"invalid JSON"}},
		{"trailing garbage", string(wrap(baseRecord)) + "}", ErrNotNotification, []string{"invalid JSON"}},
		{"JSON array", `[` + baseRecord + `]`, ErrNotNotification, []string{"expected object", "array"}},
		{"JSON string", `"Records"`, ErrNotNotification, []string{"expected object", "string"}},
		{"JSON null", `null`, ErrNotNotification, []string{`"Records"`}},
		{"no Records", `{"records_":[]}`, ErrNotNotification, []string{`"Records"`}},
		{"a single record", baseRecord, ErrNotNotification, []string{`"Records"`}},
		{"Records null", `{"Records":null}`, ErrNotNotification, []string{`"Records"`}},
		{"Records an object", `{"Records":{"0":` + baseRecord + `}}`, ErrNotNotification, []string{"Records", "expected array", "object"}},
		{"Records a string", `{"Records":"x"}`, ErrNotNotification, []string{"Records", "expected array", "string"}},
		{"empty Records", `{"Records":[]}`, ErrNoRecords, []string{"no records"}},
		{"record a number", `{"Records":[1]}`, ErrBadRecord, []string{"record 0", "not a JSON object"}},
		{"record null", `{"Records":[null]}`, ErrBadRecord, []string{"record 0", "not a JSON object"}},
		{"record an array", `{"Records":[[]]}`, ErrBadRecord, []string{"record 0", "not a JSON object"}},
		{"second record bad", string(wrap(baseRecord, `"x"`)), ErrBadRecord, []string{"record 1", "not a JSON object"}},
		{"no eventName", string(wrap(noName)), ErrBadRecord, []string{"record 0", "eventName"}},
		{"empty eventName", string(wrap(emptyName)), ErrBadRecord, []string{"eventName"}},
		{"eventName a number", string(wrap(edit(t, baseRecord, `"eventName":"ObjectCreated:Put"`, `"eventName":5`))),
			ErrBadRecord, []string{"eventName", "expected string", "number"}},
		{"no bucket name", string(wrap(noBucket)), ErrBadRecord, []string{"s3.bucket.name"}},
		{"no s3", string(wrap(noS3)), ErrBadRecord, []string{"s3.bucket.name"}},
		{"s3 a string", string(wrap(`{"eventName":"x","s3":"photos"}`)), ErrBadRecord, []string{"s3", "expected object", "string"}},
		{"key a number", string(wrap(edit(t, baseRecord, `"key":"a/b.jpg"`, `"key":7`))), ErrBadRecord, []string{"key", "expected string"}},
		{"metadata an object", string(wrap(edit(t, baseRecord, `"metadata":[`, `"metadata":{"a":`, `],"tags"`, `},"tags"`))),
			ErrBadRecord, []string{"metadata", "expected array", "object"}},
		{"metadata entry a string", string(wrap(edit(t, baseRecord, `[{"key":"x-amz-meta-color","val":"blue"}]`, `["color=blue"]`))),
			ErrBadRecord, []string{"metadata", "expected object", "string"}},
		{"size not a number", string(wrap(edit(t, baseRecord, `"size":177`, `"size":"big"`))), ErrBadRecord, []string{"size", `"big"`}},
		{"size negative", string(wrap(edit(t, baseRecord, `"size":177`, `"size":-1`))), ErrBadRecord, []string{"size", "negative"}},
		{"size negative string", string(wrap(edit(t, baseRecord, `"size":177`, `"size":"-5"`))), ErrBadRecord, []string{"size", "negative"}},
		{"size fractional", string(wrap(edit(t, baseRecord, `"size":177`, `"size":1.5`))), ErrBadRecord, []string{"size", "1.5", "whole number"}},
		{"size huge float", string(wrap(edit(t, baseRecord, `"size":177`, `"size":1e300`))), ErrBadRecord, []string{"size", "too large"}},
		{"size infinite string", string(wrap(edit(t, baseRecord, `"size":177`, `"size":"Inf"`))), ErrBadRecord, []string{"size", "too large"}},
		{"size NaN string", string(wrap(edit(t, baseRecord, `"size":177`, `"size":"NaN"`))), ErrBadRecord, []string{"size", "whole number"}},
		{"size a long string", string(wrap(edit(t, baseRecord, `"size":177`, `"size":"`+strings.Repeat("9", 500)+`"`))), ErrBadRecord, []string{"size", "too large"}},
		{"size a long negative string", string(wrap(edit(t, baseRecord, `"size":177`, `"size":"-`+strings.Repeat("9", 500)+`"`))), ErrBadRecord, []string{"size", "negative"}},
		{"size too large", string(wrap(edit(t, baseRecord, `"size":177`, `"size":9223372036854775808`))), ErrBadRecord, []string{"size", "too large"}},
		{"size a bool", string(wrap(edit(t, baseRecord, `"size":177`, `"size":true`))), ErrBadRecord, []string{"size"}},
		{"size an object", string(wrap(edit(t, baseRecord, `"size":177`, "\"size\":{\n\"n\":1}"))), ErrBadRecord, []string{"size"}},
		{"size a huge array", string(wrap(edit(t, baseRecord, `"size":177`, `"size":[`+strings.Repeat(`"xxxxxxxxxx",`, 200)+`1]`))), ErrBadRecord, []string{"size"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := Decode([]byte(tt.body))
			if err == nil {
				t.Fatalf("no error; decoded %d records", len(recs))
			}
			if recs != nil {
				t.Errorf("records returned with the error: %d", len(recs))
			}
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("error %q does not wrap %v", err, tt.sentinel)
			}
			checkMessage(t, err, tt.mention...)
		})
	}
}

// checkMessage asserts an error message fits on one line of an HTTP answer or
// a log, is not a Go-internal dump, and says what is wrong.
func checkMessage(t *testing.T, err error, mention ...string) {
	t.Helper()
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("message is not one line: %q", msg)
	}
	if len(msg) > 300 {
		t.Errorf("message is %d bytes long: %q", len(msg), msg)
	}
	for _, internal := range []string{"json: cannot", "Go value", "struct {", "[]json.RawMessage", "*[]"} {
		if strings.Contains(msg, internal) {
			t.Errorf("message leaks Go internals (%q): %q", internal, msg)
		}
	}
	for _, m := range mention {
		if !strings.Contains(msg, m) {
			t.Errorf("message %q does not mention %q", msg, m)
		}
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		mention []string
	}{
		{"empty", ``, []string{"not a JSON object"}},
		{"array", `[` + baseRecord + `]`, []string{"not a JSON object"}},
		{"invalid JSON", `{"eventName":`, []string{"invalid JSON"}},
		{"no eventName", `{"s3":{"bucket":{"name":"b"}}}`, []string{"eventName"}},
		{"no bucket", `{"eventName":"ObjectCreated:Put"}`, []string{"s3.bucket.name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeRecord([]byte(tt.raw))
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error %v does not wrap ErrBadRecord", err)
			}
			checkMessage(t, err, tt.mention...)
		})
	}
}

func TestDecodeAnyAndFromData(t *testing.T) {
	second := edit(t, baseRecord, `"eventId":"1713693798.430517.e1"`, `"eventId":"2"`)
	tests := []struct {
		name     string
		data     string
		n        int   // records DecodeAny returns
		sentinel error // DecodeAny's error
		fromData bool
		key      string // of the record FromData returns
	}{
		{"single record", baseRecord, 1, nil, true, "a/b.jpg"},
		{"single record with spaces around", " \n" + baseRecord + "\n", 1, nil, true, "a/b.jpg"},
		{"envelope", string(wrap(baseRecord)), 1, nil, true, "a/b.jpg"},
		{"envelope of two", string(wrap(baseRecord, second)), 2, nil, false, ""},
		{"empty envelope", `{"Records":[]}`, 0, ErrNoRecords, false, ""},
		{"record whose key is Records", edit(t, baseRecord, `"key":"a/b.jpg"`, `"key":"Records"`), 1, nil, true, "Records"},
		{"record whose opaqueData names Records", edit(t, baseRecord, `"opaqueData":""`, `"opaqueData":"see \"Records\""`), 1, nil, true, "a/b.jpg"},
		{"record whose metadata mentions Records", edit(t, baseRecord, `"val":"blue"`, `"val":"Records"`), 1, nil, true, "a/b.jpg"},
		{"envelope with Records in a key", string(wrap(edit(t, baseRecord, `"key":"a/b.jpg"`, `"key":"Records"`))), 1, nil, true, "Records"},
		{"other JSON object", `{"hello":"world"}`, 0, ErrNotNotification, false, ""},
		{"other JSON with eventName", `{"eventName":"login","user":"x"}`, 0, ErrBadRecord, false, ""},
		{"JSON array", `[1,2]`, 0, ErrNotNotification, false, ""},
		{"JSON string", `"Records"`, 0, ErrNotNotification, false, ""},
		{"not JSON", `Records`, 0, ErrNotNotification, false, ""},
		{"empty", ``, 0, ErrNotNotification, false, ""},
		{"Records not an array", `{"Records":{"eventName":"x"}}`, 0, ErrNotNotification, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := DecodeAny([]byte(tt.data))
			if tt.sentinel != nil {
				if !errors.Is(err, tt.sentinel) {
					t.Errorf("DecodeAny error = %v, want %v", err, tt.sentinel)
				} else {
					checkMessage(t, err)
				}
			} else if err != nil {
				t.Errorf("DecodeAny: %v", err)
			}
			if len(recs) != tt.n {
				t.Errorf("DecodeAny returned %d records, want %d", len(recs), tt.n)
			}
			rec, ok := FromData([]byte(tt.data))
			if ok != tt.fromData {
				t.Fatalf("FromData ok = %v, want %v", ok, tt.fromData)
			}
			if ok && rec.S3.Object.Key != tt.key {
				t.Errorf("FromData key = %q, want %q", rec.S3.Object.Key, tt.key)
			}
			if ok && len(rec.Raw) == 0 {
				t.Error("FromData record has no Raw")
			}
			if !ok && (rec.EventName != "" || rec.Raw != nil) {
				t.Errorf("FromData returned a record with ok=false: %+v", rec)
			}
		})
	}
}

func TestObjectMarshalJSON(t *testing.T) {
	rec, err := DecodeRecord([]byte(edit(t, baseRecord, `"eTag":"e1"`, `"etag":"e1"`, `"size":177`, `"size":"177"`)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := rec.S3.Object.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"key":"a/b.jpg","size":177,"eTag":"e1","versionId":"","sequencer":"66E42466712CA919",` +
		`"metadata":[{"key":"x-amz-meta-color","val":"blue"}],"tags":[]}`
	if string(b) != want {
		t.Errorf("MarshalJSON =\n%s\nwant\n%s", b, want)
	}
	var back Object
	if err := back.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Metadata, rec.S3.Object.Metadata) || back.Key != rec.S3.Object.Key || back.Size != 177 || back.ETag != "e1" {
		t.Errorf("round trip = %+v", back)
	}
}

// Record's own UnmarshalJSON path (json.Unmarshal into a Record, through
// Object's and KeyVal's methods) reads what DecodeRecord reads, Raw aside.
func TestUnmarshalRecordDirectly(t *testing.T) {
	bodies := [][]byte{[]byte(baseRecord),
		[]byte(edit(t, baseRecord, `"eTag":"e1"`, `"etag":"e1"`, `"size":177`, `"size":"177"`, `"val":"blue"`, `"value":"blue"`))}
	for _, body := range events.All() {
		bodies = append(bodies, recordBytes(t, body))
	}
	for _, raw := range bodies {
		want, err := DecodeRecord(raw)
		if err != nil {
			t.Fatal(err)
		}
		want.Raw = nil
		var got Record
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("json.Unmarshal: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("json.Unmarshal into Record:\n got %+v\nwant %+v", got, want)
		}
	}
	var o Object
	if err := json.Unmarshal([]byte(`{"size":-1}`), &o); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Errorf("Object.UnmarshalJSON accepted a negative size: %v", err)
	}
	var kv KeyVal
	if err := json.Unmarshal([]byte(`{"key":"k","value":"v"}`), &kv); err != nil || kv != (KeyVal{"k", "v"}) {
		t.Errorf("KeyVal.UnmarshalJSON = %+v, %v", kv, err)
	}
}
