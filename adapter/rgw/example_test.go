package rgw_test

import (
	"fmt"

	"github.com/rgw-nats/rgw-nats/adapter/rgw"
)

func ExampleDecode() {
	// What Octopus and early Pacific POST: "s3:" before the event name,
	// "etag" instead of "eTag"; the documentation's example sends the size
	// as a string. All of them decode to the same Record.
	body := []byte(`{"Records":[{"eventVersion":"2.2","eventSource":"ceph:s3","awsRegion":"",
		"eventTime":"2020-04-18T13:11:48.559808Z","eventName":"s3:ObjectCreated:Put",
		"userIdentity":{"principalId":"testid"},"requestParameters":{"sourceIPAddress":""},
		"responseElements":{"x-amz-request-id":"e7c7e41c.4200.27","x-amz-id-2":"1068-default-default"},
		"s3":{"s3SchemaVersion":"1.0","configurationId":"uploads","bucket":{"name":"photos",
		"ownerIdentity":{"principalId":"testid"},"arn":"arn:aws:s3:::photos","id":"e7c7e41c.4202.1"},
		"object":{"key":"2020/cat picture.jpg","size":"1575","etag":"2dd16b058f745ade156d77437962d4e4",
		"versionId":"","sequencer":"95FC9A5E150EFA28",
		"metadata":[{"key":"x-amz-meta-camera","val":"x100"}],"tags":[{"key":"team","val":"web"}]}},
		"eventId":"1587215509.687476.2dd16b058f745ade156d77437962d4e4","opaqueData":""}]}`)

	recs, err := rgw.Decode(body)
	if err != nil {
		fmt.Println(err)
		return
	}
	r := recs[0]
	t, _ := r.Time()
	fmt.Println(r.Name(), t.Format("2006-01-02 15:04:05.000000"))
	fmt.Printf("%s/%s, %d bytes, etag %s\n", r.S3.Bucket.Name, r.S3.Object.Key, r.S3.Object.Size, r.S3.Object.ETag)
	fmt.Println(r.S3.Object.Metadata, r.S3.Object.Tags)
	fmt.Println(r.EventID)

	_, err = rgw.Decode([]byte(`{"Records":[]}`))
	fmt.Println(err)
	_, err = rgw.Decode([]byte(`{"Records":[{"eventName":"ObjectCreated:Put"}]}`))
	fmt.Println(err)
	// Output:
	// ObjectCreated:Put 2020-04-18 13:11:48.559808
	// photos/2020/cat picture.jpg, 1575 bytes, etag 2dd16b058f745ade156d77437962d4e4
	// [{x-amz-meta-camera x100}] [{team web}]
	// 1587215509.687476.2dd16b058f745ade156d77437962d4e4
	// notification has no records
	// record 0: bad notification record: no s3.bucket.name
}

func ExampleFromData() {
	// CephSource sends one record per CloudEvent, without the envelope.
	data := []byte(`{"eventName":"ObjectRemoved:Delete","eventTime":"2024-04-21 10:03:18.419013Z",
		"s3":{"bucket":{"name":"photos"},"object":{"key":"old.jpg"}},"eventId":"1713693798.430517.x"}`)
	rec, ok := rgw.FromData(data)
	fmt.Println(ok, rec.Name(), rec.S3.Object.Key)
	_, ok = rgw.FromData([]byte(`{"user":"alice","action":"login"}`))
	fmt.Println(ok)
	// Output:
	// true ObjectRemoved:Delete old.jpg
	// false
}
