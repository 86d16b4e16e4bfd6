package build

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// debArchs maps each packaged Debian architecture to its Go build.
var debArchs = []struct {
	deb    string
	goarch string
	goarm  string // the GOARM build setting; "" for 64-bit
	mach   elf.Machine
}{
	{"armhf", "arm", "6", elf.EM_ARM}, // armv6: a Pi Zero/1, and every later Pi
	{"arm64", "arm64", "", elf.EM_AARCH64},
	{"amd64", "amd64", "", elf.EM_X86_64},
}

// debFile returns dist/outpost_*_<arch>.deb from `make deb`, skipping (or,
// with OUTPOST_DEB_REQUIRED=1 as `make deb-check` sets, failing) when there
// is none or dpkg-deb is missing.
func debFile(t *testing.T, arch string) string {
	t.Helper()
	missing := t.Skipf
	if os.Getenv("OUTPOST_DEB_REQUIRED") == "1" {
		missing = t.Fatalf
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		missing("dpkg-deb not installed (Debian package dpkg)")
	}
	m, _ := filepath.Glob(filepath.Join("..", "dist", "outpost_*_"+arch+".deb"))
	if len(m) != 1 {
		missing("want one dist/outpost_*_%s.deb from `make deb`, found %d", arch, len(m))
	}
	return m[0]
}

func dpkgDeb(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("dpkg-deb %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return string(out)
}

// Each package, as dpkg-deb reads it: the control fields, the files with
// their owners and modes, the conffile, the maintainer scripts; and the
// files themselves: the unit and config are build/'s, the binary is the
// right architecture, stripped, built without cgo.
func TestDebPackages(t *testing.T) {
	for _, a := range debArchs {
		t.Run(a.deb, func(t *testing.T) {
			deb := debFile(t, a.deb)
			dpkgDeb(t, "--info", deb) // a valid archive

			fields := map[string]string{}
			for _, f := range []string{"Package", "Version", "Architecture", "Depends", "Maintainer", "Description", "Section"} {
				fields[f] = strings.TrimSpace(dpkgDeb(t, "--field", deb, f))
			}
			if fields["Package"] != "outpost" || fields["Architecture"] != a.deb || fields["Depends"] != "passwd" || fields["Section"] != "net" {
				t.Errorf("control fields: %q", fields)
			}
			if !regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`).MatchString(fields["Version"]) {
				t.Errorf("Version %q is not a Debian upstream version", fields["Version"])
			}
			if fields["Maintainer"] == "" || fields["Description"] == "" {
				t.Errorf("Maintainer or Description empty: %q", fields)
			}

			// --contents: "-rwxr-xr-x root/root 15007906 2026-11-25 11:54 ./usr/bin/outpost"
			files := map[string]string{} // path -> mode owner
			for _, l := range strings.Split(strings.TrimSpace(dpkgDeb(t, "--contents", deb)), "\n") {
				f := strings.Fields(l)
				if len(f) < 6 {
					t.Fatalf("dpkg-deb --contents line: %q", l)
				}
				files[f[5]] = f[0] + " " + f[1]
			}
			for path, want := range map[string]string{
				"./usr/bin/outpost":                             "-rwxr-xr-x root/root",
				"./usr/lib/systemd/system/outpost.service":      "-rw-r--r-- root/root",
				"./etc/outpost/outpost.yaml":                    "-rw-r----- root/root", // postinst: group outpost
				"./etc/outpost/":                                "drwxr-xr-x root/root",
				"./usr/share/doc/outpost/examples/minimal.yaml": "-rw-r--r-- root/root",
			} {
				if got := files[path]; got != want {
					t.Errorf("%s: %q, want %q", path, got, want)
				}
			}
			for path := range files {
				if !strings.HasPrefix(path, "./usr/") && !strings.HasPrefix(path, "./etc/outpost/") && path != "./etc/" {
					t.Errorf("file outside /usr and /etc/outpost: %s", path)
				}
			}

			dir := t.TempDir()
			ctrl, root := filepath.Join(dir, "DEBIAN"), filepath.Join(dir, "root")
			dpkgDeb(t, "--control", deb, ctrl)
			dpkgDeb(t, "--extract", deb, root)
			if c, _ := os.ReadFile(filepath.Join(ctrl, "conffiles")); strings.TrimSpace(string(c)) != "/etc/outpost/outpost.yaml" {
				t.Errorf("conffiles: %q, want /etc/outpost/outpost.yaml", c)
			}
			for _, s := range []string{"postinst", "prerm", "postrm"} {
				got, err := os.ReadFile(filepath.Join(ctrl, s))
				want, _ := os.ReadFile(filepath.Join("deb", s))
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s is not build/deb/%s (%v)", s, s, err)
				}
				if st, err := os.Stat(filepath.Join(ctrl, s)); err != nil || st.Mode()&0o111 == 0 {
					t.Errorf("%s is not executable: %v", s, err)
				}
			}
			for packaged, src := range map[string]string{
				"usr/lib/systemd/system/outpost.service": "outpost.service",
				"etc/outpost/outpost.yaml":               "outpost.yaml",
			} {
				got, _ := os.ReadFile(filepath.Join(root, packaged))
				want, _ := os.ReadFile(src)
				if !bytes.Equal(got, want) {
					t.Errorf("/%s differs from build/%s: rebuild with make deb", packaged, src)
				}
			}

			bin := filepath.Join(root, "usr/bin/outpost")
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != a.mach {
				t.Errorf("/usr/bin/outpost is %v, want %v", f.Machine, a.mach)
			}
			if f.Section(".symtab") != nil {
				t.Errorf("/usr/bin/outpost is not stripped")
			}
			bi, err := buildinfo.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			settings := map[string]string{}
			for _, s := range bi.Settings {
				settings[s.Key] = s.Value
			}
			if settings["GOARCH"] != a.goarch || settings["GOARM"] != a.goarm || settings["CGO_ENABLED"] != "0" {
				t.Errorf("built with GOARCH=%s GOARM=%s CGO_ENABLED=%s, want %s %q 0",
					settings["GOARCH"], settings["GOARM"], settings["CGO_ENABLED"], a.goarch, a.goarm)
			}
			if a.goarch == runtime.GOARCH && runtime.GOOS == "linux" {
				out, err := exec.Command(bin, "check", "-c", filepath.Join(root, "etc/outpost/outpost.yaml")).CombinedOutput()
				if err != nil {
					t.Errorf("packaged outpost check of the packaged config: %v\n%s", err, out)
				}
			}
		})
	}
}

// The maintainer scripts are POSIX sh (dash on Debian) and create the user
// the unit runs as.
func TestDebScripts(t *testing.T) {
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		p := filepath.Join("deb", s)
		if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", p, err, out)
		}
		if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable", p)
		}
	}
	post, _ := os.ReadFile("deb/postinst")
	for _, want := range []string{"useradd --system", "--shell /usr/sbin/nologin", "outpost", "usermod -a -G", "chgrp outpost /etc/outpost/outpost.yaml", "set -e"} {
		if !bytes.Contains(post, []byte(want)) {
			t.Errorf("postinst lacks %q", want)
		}
	}
}
