package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	cejsm "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/function"
)

// Streams and subjects of the comparison targets (rgw-nats uses its own
// defaults: stream RGW capturing rgw.>).
const (
	floorStream  = "BENCH"
	floorSubject = "bench.floor" // JetStream floor: captured by BENCH
	// Core rows publish outside every stream: a captured core publish is
	// also stored, which would make core rows pay for JetStream.
	coreSubject  = "benchcore.floor"
	coreTemplate = "benchcore.{bucket}.{event}"
	sdkStream    = "SDKGO" // the sdk-go sender captures SDKGO.*
	sdkSubject   = "SDKGO.rgw"
)

// serveTarget runs one comparison server until SIGTERM. Every target answers
// GET /health/readiness with 200 once it is connected, like rgw-nats.
func serveTarget(target, natsURL, addr string) error {
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	var post http.HandlerFunc
	switch target {
	case "floor-core":
		post = floorCore(nc)
	case "floor-jetstream":
		post, err = floorJetStream(nc)
	case "sdk-go":
		post, err = sdkGo(nc)
	default:
		err = fmt.Errorf("unknown target %q", target)
	}
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health/readiness", func(w http.ResponseWriter, r *http.Request) {
		if !nc.IsConnected() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("POST /", post)
	return serveUntilSignal(&http.Server{Handler: mux}, addr)
}

func serveUntilSignal(srv *http.Server, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

func unavailable(w http.ResponseWriter, err error) {
	w.Header().Set("Retry-After", "1")
	http.Error(w, err.Error(), http.StatusServiceUnavailable)
}

// floorCore is the least an honest core-mode adapter does: the body as it
// is, one shared connection, a flush so the answer tells the truth.
func floorCore(nc *nats.Conn) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := nc.Publish(coreSubject, body); err != nil {
			unavailable(w, err)
			return
		}
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			unavailable(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// floorJetStream: the body as it is, a synchronous publish with a msg id
// (the record's eventId, found without decoding), the ack before the answer.
func floorJetStream(nc *nats.Conn) (http.HandlerFunc, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, err = js.PublishMsg(r.Context(), &nats.Msg{Subject: floorSubject, Data: body},
			jetstream.WithMsgID(eventID(body)))
		if err != nil {
			unavailable(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}, nil
}

func eventID(body []byte) string {
	const key = `"eventId":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return ""
	}
	rest := body[i+len(key):]
	if j := bytes.IndexByte(rest, '"'); j >= 0 {
		return string(rest[:j])
	}
	return ""
}

// sdkGo is how one would write the adapter with the CloudEvents SDK alone:
// encoding/json decoding, one sdk-go event per record, sent through the
// SDK's client with its JetStream protocol (binary mode, a synchronous
// publish that waits for the ack; the SDK sets no msg id).
func sdkGo(nc *nats.Conn) (http.HandlerFunc, error) {
	sender, err := cejsm.NewSenderFromConn(nc, sdkStream, sdkSubject, nil)
	if err != nil {
		return nil, err
	}
	client, err := cloudevents.NewClient(sender)
	if err != nil {
		return nil, err
	}
	type record struct {
		EventTime time.Time `json:"eventTime"`
		EventName string    `json:"eventName"`
		AWSRegion string    `json:"awsRegion"`
		EventID   string    `json:"eventId"`
		S3        struct {
			ConfigurationID string `json:"configurationId"`
			Bucket          struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key string `json:"key"`
			} `json:"object"`
		} `json:"s3"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		var env struct {
			Records []json.RawMessage `json:"Records"`
		}
		if err := json.NewDecoder(r.Body).Decode(&env); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, raw := range env.Records {
			var rec record
			if err := json.Unmarshal(raw, &rec); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			ev := cloudevents.NewEvent()
			ev.SetID(rec.EventID + "." + rec.S3.ConfigurationID)
			ev.SetSource("ceph:s3." + rec.AWSRegion + "." + rec.S3.Bucket.Name)
			ev.SetType("com.amazonaws." + rec.EventName)
			ev.SetSubject(rec.S3.Object.Key)
			ev.SetTime(rec.EventTime)
			ev.SetExtension("bucket", rec.S3.Bucket.Name)
			if err := ev.SetData(cloudevents.ApplicationJSON, []byte(raw)); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if res := client.Send(r.Context(), ev); !cloudevents.IsACK(res) {
				unavailable(w, res)
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}, nil
}

// hostRGWNATS serves the rgw-nats function (configured from the environment,
// as the binary is) behind an HTTP server with a connection rule that the
// binary does not have: closeEvery > 0 answers every closeEvery-th response
// on a connection with Connection: close; idle is the server's IdleTimeout.
// It is how the price of a rule is measured before anyone builds it in.
func hostRGWNATS(addr string, idle time.Duration, closeEvery int64) error {
	cfg, err := function.LoadConfig()
	if err != nil {
		return err
	}
	f := function.New(function.WithConfig(cfg))
	if err := f.Start(context.Background(), nil); err != nil {
		return err
	}
	defer f.Stop(context.Background())
	type connKey struct{}
	mux := http.NewServeMux()
	mux.HandleFunc("/health/readiness", func(w http.ResponseWriter, r *http.Request) {
		if ok, _ := f.Ready(r.Context()); !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if closeEvery > 0 {
			if n := r.Context().Value(connKey{}).(*atomic.Int64).Add(1); n%closeEvery == 0 {
				w.Header().Set("Connection", "close")
			}
		}
		f.Handle(w, r)
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       idle,
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, new(atomic.Int64))
		},
	}
	return serveUntilSignal(srv, addr)
}
