package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edged-proxy/edged/loadtest/origin"
)

func TestHelpDocumentsFlags(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, io.Discard, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"-listen", "-delay", "-rate", "-fail", "reset=after:N", "/__stats/reset", "-fixed", "-fixed-raw"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q", want)
		}
	}
}

func TestRefusesNonLoopbackListen(t *testing.T) {
	if err := run(context.Background(), []string{"-listen", "0.0.0.0:0"}, io.Discard, io.Discard); err == nil {
		t.Fatal("listening on 0.0.0.0 was accepted")
	}
}

func TestServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-sizes", "2KiB"}, pw, io.Discard) }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	addr := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	resp, err := http.Get("http://" + addr + "/obj/z")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(body, origin.Expected("z", 2048)) {
		t.Errorf("got %d bytes, want the 2KiB body of z", len(body))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("did not shut down")
	}
	pw.Close()
}
