package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/edged-proxy/edged/purge"
)

// defaultPurgeAdmin is where `edged purge` finds the admin listener by default.
const defaultPurgeAdmin = "http://127.0.0.1:9090"

// purgeCommand is one `edged purge` invocation, checked: either a purge of
// sel or, with receipt set, a receipt lookup.
type purgeCommand struct {
	base    string // admin listener, "scheme://host[:port][/path]" without trailing '/'
	token   string
	receipt string // purge id to look up; "" means purge sel
	timeout time.Duration
	sel     purge.Selector
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// runPurgeCLI runs `edged purge`; args are the arguments after "purge". It
// returns the exit code: 0 when the purge (or receipt lookup) succeeded, 1
// when the server refused or failed it (its message goes to stderr), 2 on a
// usage error. On success the server's JSON answer goes to stdout.
func runPurgeCLI(args []string, stdout, stderr io.Writer) int {
	c, code, ok := parsePurgeArgs(args, stderr)
	if !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	req, err := c.newRequest(ctx)
	if err != nil {
		return purgeUsage(stderr, "%v", err)
	}
	data, code := c.send(req, stderr)
	if code != 0 {
		return code
	}
	writeIndented(stdout, data)
	if c.receipt == "" {
		var res purge.Result
		if json.Unmarshal(data, &res) == nil && (res.Fleet.State == purge.FleetPending || res.Fleet.State == purge.FleetFailed) {
			fmt.Fprintf(stderr, "edged purge: applied on this node; fleet: %s: %s\n", res.Fleet.State, res.Fleet.Error)
		}
	}
	return 0
}

// parsePurgeArgs parses and checks the command line. With ok false the
// command is done and code is its exit code (0 after -h, 2 on a usage
// error, reported on stderr).
func parsePurgeArgs(args []string, stderr io.Writer) (c purgeCommand, code int, ok bool) {
	fs := flag.NewFlagSet("edged purge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin", defaultPurgeAdmin, "admin listener `URL` (or host:port)")
	fs.StringVar(&c.token, "token", "", "bearer `token` (default $"+purge.TokenEnv+")")
	fs.BoolVar(&c.sel.Soft, "soft", false, "mark stale instead of deleting")
	fs.StringVar(&c.receipt, "receipt", "", "show the receipt of purge `ID` instead of purging")
	fs.DurationVar(&c.timeout, "timeout", 2*time.Minute, "give up after this `duration`")
	fs.Var((*multiFlag)(&c.sel.URLs), "url", "purge this absolute `URL` (every variant); repeatable")
	fs.Var((*multiFlag)(&c.sel.Prefixes), "prefix", "purge everything under `host/path` or scheme://host/path; repeatable")
	fs.Var((*multiFlag)(&c.sel.Tags), "tag", "purge every object carrying this surrogate `key`; repeatable")
	fs.Var((*multiFlag)(&c.sel.Hosts), "host", "purge everything stored for this `host[:port]`; repeatable")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: edged purge [-admin URL] [-token T] (--url U | --prefix P | --tag T | --host H)... [--soft]\n"+
			"       edged purge [-admin URL] [-token T] -receipt ID\n\n"+
			"Exit status: 0 done, 1 refused or failed by the server, 2 usage error.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, 0, false
		}
		return c, 2, false
	}
	if fs.NArg() > 0 {
		return c, purgeUsage(stderr, "unexpected argument %q (selectors are given with --url, --prefix, --tag or --host)", fs.Arg(0)), false
	}
	var err error
	if c.base, err = adminBase(*admin); err != nil {
		return c, purgeUsage(stderr, "-admin %q: %v", *admin, err), false
	}
	if c.token == "" {
		c.token = os.Getenv(purge.TokenEnv)
	}
	if c.token == "" {
		return c, purgeUsage(stderr, "no token: pass -token or set %s", purge.TokenEnv), false
	}
	if msg := c.check(); msg != "" {
		return c, purgeUsage(stderr, "%s", msg), false
	}
	return c, 0, true
}

// check returns what is wrong with the receipt id or the selector, or "".
func (c *purgeCommand) check() string {
	if c.receipt != "" {
		if c.sel.Len() > 0 || c.sel.Soft {
			return "-receipt cannot be combined with selectors or --soft"
		}
		if !purge.ValidID(c.receipt) {
			return fmt.Sprintf("-receipt %q: not a purge id", c.receipt)
		}
		return ""
	}
	if err := c.sel.Validate(purge.DefaultMaxItems); err != nil {
		return err.Error()
	}
	return ""
}

// purgeUsage reports a usage error on stderr and returns its exit code, 2.
func purgeUsage(stderr io.Writer, format string, a ...any) int {
	fmt.Fprintf(stderr, "edged purge: "+format+"\n", a...)
	fmt.Fprintln(stderr, "Run 'edged purge -h' for usage.")
	return 2
}

// newRequest builds the admin API request: GET /purge/{id} for a receipt,
// else POST /purge with the selector.
func (c *purgeCommand) newRequest(ctx context.Context) (*http.Request, error) {
	var req *http.Request
	var err error
	if c.receipt != "" {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/purge/"+c.receipt, nil)
	} else {
		body, _ := json.Marshal(c.sel)
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/purge", bytes.NewReader(body))
		if req != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	return req, nil
}

// send runs req and returns the server's 200 answer with code 0, or reports
// the failure or refusal on stderr and returns code 1.
func (c *purgeCommand) send(req *http.Request, stderr io.Writer) (data []byte, code int) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "edged purge: %v\n", err)
		return nil, 1
	}
	defer resp.Body.Close()
	data, err = io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		fmt.Fprintf(stderr, "edged purge: reading the answer: %v\n", err)
		return nil, 1
	}
	if resp.StatusCode != http.StatusOK {
		var eb struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			msg = eb.Error
		}
		fmt.Fprintf(stderr, "edged purge: refused by %s (%s): %s\n", c.base, resp.Status, msg)
		return nil, 1
	}
	return data, 0
}

// writeIndented writes a JSON answer indented (as is if it is not JSON),
// ending in a newline.
func writeIndented(w io.Writer, data []byte) {
	var out bytes.Buffer
	if json.Indent(&out, data, "", "  ") != nil {
		out.Reset()
		out.Write(data)
	}
	if !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
		out.WriteByte('\n')
	}
	_, _ = w.Write(out.Bytes())
}

// adminBase turns -admin (a URL, or host:port) into the base of the admin
// API's URLs.
func adminBase(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("want http(s)://host:port")
	}
	return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/"), nil
}
