package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
)

// gRPC passes through edged untouched: unary, server streaming and
// bidirectional streaming calls, over h2c on both sides, with trailers
// (the grpc-status a client needs) and never cached.
func TestGRPCPassThrough(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("edged.test", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	go gs.Serve(ln)
	defer gs.Stop()

	cfg := writeConfig(t, fmt.Sprintf(`server:
  h2c: true
log:
  access: false
sites:
  - name: grpc
    hosts: ["*"]
    origins:
      - url: http://%s
    upstream:
      protocol: h2c
`, ln.Addr()))
	l, _ := startDaemon(t, "-config", cfg)
	cc, err := grpc.NewClient(l.Edge, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Unary, twice: the second is not a cached copy (the status changes).
	hc := healthpb.NewHealthClient(cc)
	for _, want := range []healthpb.HealthCheckResponse_ServingStatus{healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_NOT_SERVING} {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "edged.test"})
		if err != nil {
			t.Fatalf("unary Check: %v", err)
		}
		if resp.Status != want {
			t.Fatalf("Check = %v, want %v", resp.Status, want)
		}
		hs.SetServingStatus("edged.test", healthpb.HealthCheckResponse_NOT_SERVING)
	}
	// An error status travels in the trailers.
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"}); err == nil {
		t.Error("a NotFound status did not come through")
	}

	// Server streaming.
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "edged.test"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := w.Recv()
	if err != nil || first.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch first: %v %v", first, err)
	}
	hs.SetServingStatus("edged.test", healthpb.HealthCheckResponse_SERVING)
	second, err := w.Recv()
	if err != nil || second.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch second: %v %v", second, err)
	}

	// Bidirectional streaming: several requests on one stream.
	rs, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		resp, err := rs.Recv()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, s := range resp.GetListServicesResponse().GetService() {
			found = found || s.Name == "grpc.health.v1.Health"
		}
		if !found {
			t.Fatalf("reflection answer lacks the health service: %v", resp)
		}
	}
	rs.CloseSend()
}

// h2c (HTTP/2 with prior knowledge, no TLS) through the cache: the second
// GET is a hit served over HTTP/2.
func TestH2CThroughTheCache(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "over h2c")
	}))
	defer o.Close()
	cfg := writeConfig(t, "server:\n  h2c: true\nlog:\n  access: false\n")
	l, _ := startDaemon(t, "-config", cfg, "-origin", o.URL)
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var last *http.Response
	for range 2 {
		req, _ := http.NewRequest("GET", "http://"+l.Edge+"/x", nil)
		req.Host = "cdn.example"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || string(b) != "over h2c" {
			t.Fatalf("%s %q", resp.Proto, b)
		}
		last = resp
	}
	if cs := last.Header.Get("Cache-Status"); !strings.HasPrefix(cs, "edged; hit") {
		t.Errorf("second h2c GET: %q, want a hit", cs)
	}
}
