package main

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The flags the Dockerfile builds the image's binary with; TestContainer
// builds with the same ones and checks that the Dockerfile still says so.
const (
	imageBuildEnv   = "CGO_ENABLED=0"
	imageBuildFlags = "go build -trimpath -buildvcs=false"
	imageLdflags    = "-s -w"
)

// TestContainer checks the Dockerfile and what the image holds. The image's
// build stage needs the golang image from a registry, which a sandbox
// without network cannot pull; so the test builds the binary as that stage
// does (same flags), checks it is static and runs it (-version, and
// healthcheck against a running edged), then, when buildah can run here,
// builds the Dockerfile's final stage verbatim on top of a build stage
// that only copies those files in, and runs the binary inside the image.
func TestContainer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary: not in -short")
	}
	dockerfile := readDockerfile(t)
	checkDockerfile(t, dockerfile)

	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("TestContainer SKIPPED: the go tool is not in PATH, cannot build the image's binary")
	}
	root := t.TempDir()
	bin := filepath.Join(root, "out", "usr", "local", "bin", "edged")
	if err := imageBinary(goBin, bin); err != nil {
		t.Fatal(err)
	}

	t.Run("static", func(t *testing.T) {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("the binary has a PT_INTERP program header: it is dynamically linked and cannot run on scratch")
			}
		}
		if f.Section(".interp") != nil || f.Section(".dynamic") != nil {
			t.Error("the binary has .interp or .dynamic sections: not static")
		}
		if f.Section(".symtab") != nil {
			t.Error("the binary has a symbol table: -s was not applied")
		}
	})

	t.Run("version", func(t *testing.T) {
		out, err := exec.Command(bin, "-version").CombinedOutput()
		if err != nil {
			t.Fatalf("edged -version: %v\n%s", err, out)
		}
		for _, want := range []string{"edged v0.0.0-test", "commit:  c0ffee", "built:   2026-12-05T00:00:00Z"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("edged -version printed\n%s\nwant %q", out, want)
			}
		}
	})

	l, _ := startDaemon(t)
	healthz := "http://" + l.Admin + "/healthz"
	t.Run("healthcheck", func(t *testing.T) {
		if out, err := exec.Command(bin, "healthcheck", "-url", healthz).CombinedOutput(); err != nil {
			t.Errorf("edged healthcheck against a running edged: %v\n%s", err, out)
		}
		out, err := exec.Command(bin, "healthcheck", "-url", "http://"+l.Admin+"/nothing-here").CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "404") {
			t.Errorf("edged healthcheck against a 404: %v, %q; want exit 1 naming the status", err, out)
		}
	})

	t.Run("image", func(t *testing.T) {
		buildah, err := exec.LookPath("buildah")
		if err != nil {
			fmt.Println("TestContainer/image SKIPPED: buildah not installed (apt-get install buildah); the image itself was not built")
			t.Skip("buildah not installed")
		}
		buildImage(t, buildah, root, dockerfile, healthz)
	})
}

// imageBinary puts the image's binary at bin: a copy of
// $EDGED_IMAGE_BINARY when set (.ci/run builds it with the same flags,
// outside the test timeout: a cold build with -trimpath recompiles every
// dependency), else a build of its own with the Dockerfile's flags.
func imageBinary(goBin, bin string) error {
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return err
	}
	if pre := os.Getenv("EDGED_IMAGE_BINARY"); pre != "" {
		b, err := os.ReadFile(pre)
		if err != nil {
			return fmt.Errorf("EDGED_IMAGE_BINARY: %w", err)
		}
		return os.WriteFile(bin, b, 0o755)
	}
	cmd := exec.Command(goBin, append(strings.Fields(strings.TrimPrefix(imageBuildFlags, "go ")),
		"-ldflags", imageLdflags+" -X main.version=v0.0.0-test -X main.commit=c0ffee -X main.buildDate=2026-12-05T00:00:00Z",
		"-o", bin, ".")...)
	cmd.Env = append(os.Environ(), imageBuildEnv, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %w\n%s", cmd, err, out)
	}
	return nil
}

func readDockerfile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkDockerfile holds the Dockerfile to what the tests and the docs
// assume: go.mod's Go version, the build flags, a non-root user, the
// volume, the ports and the health check.
func checkDockerfile(t *testing.T, d string) {
	t.Helper()
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if goLine == nil {
		t.Fatal("go.mod has no go line")
	}
	joined := strings.ReplaceAll(d, "\\\n", " ")
	for _, want := range []string{
		"ARG GO_VERSION=" + string(goLine[1]) + "\n",
		"FROM docker.io/library/golang:${GO_VERSION}-bookworm AS build",
		"RUN " + imageBuildEnv + " " + imageBuildFlags + " ",
		`-ldflags "` + imageLdflags + " ",
		"FROM scratch\n",
		"USER 65532:65532\n",
		"VOLUME /var/cache/edged\n",
		"EXPOSE 8080 9090\n",
		`CMD ["/usr/local/bin/edged", "healthcheck", "-url", "http://127.0.0.1:9090/healthz"]`,
		`CMD ["-listen", "0.0.0.0:8080", "-admin", "0.0.0.0:9090", "-data", "/var/cache/edged"]`,
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("the Dockerfile does not say %q", want)
		}
	}
}

// buildImage builds the Dockerfile's final stage, unchanged, with buildah
// (vfs storage, chroot isolation: no daemon, no privileges beyond root),
// on a stand-in build stage that copies in the files the real one makes;
// then checks the image's configuration and runs the binary in it.
func buildImage(t *testing.T, buildah, root, dockerfile, healthz string) {
	stage := strings.Index(dockerfile, "\nFROM scratch\n")
	if stage < 0 {
		t.Fatal("no final FROM scratch stage")
	}
	out := filepath.Join(root, "out")
	for name, content := range map[string]string{
		"etc/passwd": "edged:x:65532:65532:edged:/var/cache/edged:/sbin/nologin\n",
		"etc/group":  "edged:x:65532:\n",
	} {
		writeFile(t, filepath.Join(out, name), content)
	}
	if ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		writeFile(t, filepath.Join(out, "etc/ssl/certs/ca-certificates.crt"), string(ca))
	}
	if err := os.MkdirAll(filepath.Join(out, "var/cache/edged"), 0o750); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "Dockerfile"), "FROM scratch AS build\nCOPY out/ /out/\n"+dockerfile[stage:])

	storage := t.TempDir()
	tag := fmt.Sprintf("localhost/edged-test-%d", os.Getpid())
	ba := func(args ...string) (string, error) {
		args = append([]string{"--storage-driver", "vfs", "--root", storage, "--runroot", filepath.Join(storage, "run")}, args...)
		out, err := exec.Command(buildah, args...).CombinedOutput()
		return string(out), err
	}
	// HEALTHCHECK is a Docker-format instruction: the OCI format drops it.
	if out, err := ba("bud", "--isolation", "chroot", "--format", "docker", "--layers=false", "-t", tag, root); err != nil {
		if strings.Contains(out, "operation not permitted") || strings.Contains(out, "not supported") {
			fmt.Printf("TestContainer/image SKIPPED: buildah cannot build here: %v\n%s\n", err, out)
			t.Skip("buildah cannot build in this sandbox")
		}
		t.Fatalf("buildah bud: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = ba("rmi", "-f", tag) })

	js, err := ba("inspect", "--type", "image", tag)
	if err != nil {
		t.Fatalf("buildah inspect: %v\n%s", err, js)
	}
	var img struct {
		Docker struct {
			Config struct {
				User         string
				ExposedPorts map[string]any
				Volumes      map[string]any
				Entrypoint   []string
				Cmd          []string
				Healthcheck  struct{ Test []string }
			} `json:"config"`
		}
	}
	if err := json.Unmarshal([]byte(js), &img); err != nil {
		t.Fatal(err)
	}
	c := img.Docker.Config
	if c.User != "65532:65532" {
		t.Errorf("image user %q, want 65532:65532", c.User)
	}
	if _, ok := c.Volumes["/var/cache/edged"]; !ok {
		t.Errorf("image volumes %v, want /var/cache/edged", c.Volumes)
	}
	for _, p := range []string{"8080/tcp", "9090/tcp"} {
		if _, ok := c.ExposedPorts[p]; !ok {
			t.Errorf("image exposes %v, want %s", c.ExposedPorts, p)
		}
	}
	if strings.Join(c.Healthcheck.Test, " ") != "CMD /usr/local/bin/edged healthcheck -url http://127.0.0.1:9090/healthz" {
		t.Errorf("image health check %q", c.Healthcheck.Test)
	}
	if strings.Join(c.Entrypoint, " ") != "/usr/local/bin/edged" {
		t.Errorf("image entrypoint %q", c.Entrypoint)
	}

	// Run the binary inside the image as its user: -version, then the
	// health check against the in-process edged (chroot isolation shares
	// the host's network).
	ctr, err := ba("from", "--quiet", tag)
	if err != nil {
		t.Fatalf("buildah from: %v\n%s", err, ctr)
	}
	ctr = strings.TrimSpace(ctr)
	t.Cleanup(func() { _, _ = ba("rm", ctr) })
	for _, args := range [][]string{
		{"/usr/local/bin/edged", "-version"},
		{"/usr/local/bin/edged", "healthcheck", "-url", healthz},
	} {
		out, err := ba(append([]string{"run", "--isolation", "chroot", "--network", "host", ctr, "--"}, args...)...)
		if err != nil {
			if strings.Contains(out, "operation not permitted") {
				fmt.Printf("TestContainer/image: built and inspected, but buildah cannot run a container here: %v\n%s\n", err, out)
				return
			}
			t.Fatalf("buildah run %v: %v\n%s", args, err, out)
		}
		t.Logf("in the image: %v:\n%s", args, out)
	}
	who, err := ba("run", "--isolation", "chroot", ctr, "--", "/usr/local/bin/edged", "healthcheck", "-url", "http://127.0.0.1:1/")
	if err == nil || !strings.Contains(who, "edged healthcheck:") {
		t.Errorf("healthcheck against a closed port in the image: %v\n%s", err, who)
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
