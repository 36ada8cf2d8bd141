package purge

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
)

// TokenEnv is the environment variable the CLI (and, by convention, the
// daemon) reads a purge token from.
const TokenEnv = "EDGED_PURGE_TOKEN"

// DefaultAdminURL is where the CLI finds the admin listener by default.
const DefaultAdminURL = "http://127.0.0.1:9090"

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// RunCLI runs `edged purge`; args are the arguments after "purge". It
// returns the exit code: 0 when the purge (or receipt lookup) succeeded, 1
// when the server refused or failed it (its message goes to stderr), 2 on a
// usage error. On success the server's JSON answer goes to stdout.
func RunCLI(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edged purge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		admin   = fs.String("admin", DefaultAdminURL, "admin listener `URL` (or host:port)")
		token   = fs.String("token", "", "bearer `token` (default $"+TokenEnv+")")
		soft    = fs.Bool("soft", false, "mark stale instead of deleting")
		receipt = fs.String("receipt", "", "show the receipt of purge `ID` instead of purging")
		timeout = fs.Duration("timeout", 2*time.Minute, "give up after this `duration`")
		sel     Selector
	)
	fs.Var((*multiFlag)(&sel.URLs), "url", "purge this absolute `URL` (every variant); repeatable")
	fs.Var((*multiFlag)(&sel.Prefixes), "prefix", "purge everything under `host/path` or scheme://host/path; repeatable")
	fs.Var((*multiFlag)(&sel.Tags), "tag", "purge every object carrying this surrogate `key`; repeatable")
	fs.Var((*multiFlag)(&sel.Hosts), "host", "purge everything stored for this `host[:port]`; repeatable")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: edged purge [-admin URL] [-token T] (--url U | --prefix P | --tag T | --host H)... [--soft]\n"+
			"       edged purge [-admin URL] [-token T] -receipt ID\n\n"+
			"Exit status: 0 done, 1 refused or failed by the server, 2 usage error.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "edged purge: "+format+"\n", a...)
		fmt.Fprintln(stderr, "Run 'edged purge -h' for usage.")
		return 2
	}
	if fs.NArg() > 0 {
		return usage("unexpected argument %q (selectors are given with --url, --prefix, --tag or --host)", fs.Arg(0))
	}
	base, err := adminBase(*admin)
	if err != nil {
		return usage("-admin %q: %v", *admin, err)
	}
	tok := *token
	if tok == "" {
		tok = os.Getenv(TokenEnv)
	}
	if tok == "" {
		return usage("no token: pass -token or set %s", TokenEnv)
	}
	var req *http.Request
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if *receipt != "" {
		if sel.Len() > 0 || *soft {
			return usage("-receipt cannot be combined with selectors or --soft")
		}
		if !validID(*receipt) {
			return usage("-receipt %q: not a purge id", *receipt)
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, base+"/purge/"+*receipt, nil)
	} else {
		sel.Soft = *soft
		if err := sel.Validate(); err != nil {
			return usage("%v", err)
		}
		body, _ := json.Marshal(sel)
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, base+"/purge", bytes.NewReader(body))
		if req != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if err != nil {
		return usage("%v", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "edged purge: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		fmt.Fprintf(stderr, "edged purge: reading the answer: %v\n", err)
		return 1
	}
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			msg = eb.Error
		}
		fmt.Fprintf(stderr, "edged purge: refused by %s (%s): %s\n", base, resp.Status, msg)
		return 1
	}
	var out bytes.Buffer
	if json.Indent(&out, data, "", "  ") != nil {
		out.Reset()
		out.Write(data)
	}
	if !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
		out.WriteByte('\n')
	}
	_, _ = stdout.Write(out.Bytes())
	if *receipt == "" {
		var res Result
		if json.Unmarshal(data, &res) == nil && (res.Fleet.State == FleetPending || res.Fleet.State == FleetFailed) {
			fmt.Fprintf(stderr, "edged purge: applied on this node; fleet: %s: %s\n", res.Fleet.State, res.Fleet.Error)
		}
	}
	return 0
}

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
