package systemd_test

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// maxExposure is the worst `systemd-analyze security` rating the unit may
// have: 2.5 is the top of its "OK" band (issue 20).
const maxExposure = 2.5

// tool returns the path of a systemd tool, or skips the test loudly.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		fmt.Printf("%s SKIPPED: %s is not installed (Debian package systemd): the unit was not checked\n", t.Name(), name)
		t.Skipf("%s not installed", name)
	}
	return p
}

// unitCopy writes the unit to a temporary directory with the binary's path
// replaced by one that exists: verify refuses an ExecStart= it cannot find.
func unitCopy(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("edged.service")
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable() // any executable file does
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "/usr/local/bin/edged", exe)
	p := filepath.Join(t.TempDir(), "edged.service")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVerify(t *testing.T) {
	sa := tool(t, "systemd-analyze")
	// verify exits 0 on unknown keys and bad values, which it only
	// prints: any output is a failure.
	out, err := exec.Command(sa, "verify", unitCopy(t)).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

var exposureLine = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) (\S+)`)

func TestSecurity(t *testing.T) {
	sa := tool(t, "systemd-analyze")
	// --threshold takes tenths: it fails the command above that level.
	out, err := exec.Command(sa, "security", "--offline=true", "--no-pager",
		"--threshold="+strconv.Itoa(int(maxExposure*10)), unitCopy(t)).CombinedOutput()
	m := exposureLine.FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no overall exposure (%v):\n%s", err, out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	fmt.Printf("systemd-analyze security --offline=true edged.service: %.1f %s\n", score, m[2])
	if score > maxExposure || err != nil {
		t.Errorf("exposure %.1f %s (%v), want at most %.1f:\n%s", score, m[2], err, maxExposure, out)
	}
}

// What edged needs of its sandbox, so that a stricter setting that would
// break it is caught here rather than in production: binding :80 and :443,
// writing only its cache, sd_notify and SIGUSR2 upgrades (the new process
// is a child of the old one), and the network families it uses.
func TestUnitKeepsWhatEdgedNeeds(t *testing.T) {
	b, err := os.ReadFile("edged.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Type=notify",
		"NotifyAccess=all",
		"KillMode=mixed",
		"CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
		"AmbientCapabilities=CAP_NET_BIND_SERVICE\n",
		"ProtectSystem=strict",
		"CacheDirectory=edged",
		"ReadWritePaths=/var/cache/edged\n",
		"RuntimeDirectory=edged",
		"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK\n",
		"SystemCallFilter=@system-service\n",
		"User=edged\n",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("edged.service lacks %q", strings.TrimSpace(want))
		}
	}
	for never, why := range map[string]string{
		"PrivateNetwork=true": "edged could not reach origins",
		"PrivateUsers=true":   "CAP_NET_BIND_SERVICE would not bind :80 in the host's network",
		"IPAddressDeny=any":   "edged could not reach origins",
		"ProcSubset=pid":      "the process collector reads /proc/stat for process_start_time_seconds",
	} {
		if strings.Contains(string(b), "\n"+never) {
			t.Errorf("edged.service sets %s: %s", never, why)
		}
	}
}

// TestSysusersAndTmpfiles applies both files to a scratch root and checks
// the user, the group and the two directories they make.
func TestSysusersAndTmpfiles(t *testing.T) {
	sysusers, tmpfiles := tool(t, "systemd-sysusers"), tool(t, "systemd-tmpfiles")
	if os.Geteuid() != 0 {
		fmt.Printf("%s SKIPPED: not root, so systemd-tmpfiles cannot give the directories their owners\n", t.Name())
		t.Skip("not root")
	}
	root := t.TempDir()
	for _, f := range []struct{ src, dst string }{
		{"edged.sysusers", "usr/lib/sysusers.d/edged.conf"},
		{"edged.tmpfiles", "usr/lib/tmpfiles.d/edged.conf"},
	} {
		b, err := os.ReadFile(f.src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(root, f.dst)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sysusers, "--root="+root).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^edged:x:(\d+):(\d+):[^:]*:/var/cache/edged:/usr/sbin/nologin$`).FindStringSubmatch(string(passwd))
	if m == nil {
		t.Fatalf("no edged system user with a nologin shell in\n%s", passwd)
	}
	uid, _ := strconv.Atoi(m[1])
	gid, _ := strconv.Atoi(m[2])
	if uid == 0 || uid >= 1000 {
		t.Errorf("edged's uid is %d, want a system uid (1-999)", uid)
	}
	if out, err := exec.Command(tmpfiles, "--root="+root, "--create").CombinedOutput(); err != nil {
		t.Fatalf("systemd-tmpfiles --create: %v\n%s", err, out)
	}
	for _, d := range []struct {
		path     string
		uid, gid int
	}{
		{"etc/edged", 0, gid},
		{"var/cache/edged", uid, gid},
	} {
		fi, err := os.Stat(filepath.Join(root, d.path))
		if err != nil {
			t.Errorf("systemd-tmpfiles did not create /%s: %v", d.path, err)
			continue
		}
		uid, gid := owner(fi)
		if !fi.IsDir() || fi.Mode().Perm() != 0o750 || uid != d.uid || gid != d.gid {
			t.Errorf("/%s: %v owned by %d:%d, want a directory 0750 owned by %d:%d", d.path, fi.Mode(), uid, gid, d.uid, d.gid)
		}
	}
}

func owner(fi fs.FileInfo) (uid, gid int) {
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}
