package main

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"sigs.k8s.io/yaml"

	"github.com/minipipe/minipipe/testkit"
)

// TestImage builds the image the way `make image` does (deploy/image.sh), then checks what a registry and a
// cluster would: OCI media types, a config naming the binary, a numeric non-root user and the ports the chart's
// Services forward to; the tarball holds the same image; and the binary unpacked from the image runs in the
// image's own file system (chroot, as its non-root user): `minipipe --version`, then `minipipe run` on the test's
// real Kafka until /readyz answers.
func TestImage(t *testing.T) {
	if os.Getenv("MINIPIPE_SKIP_REAL") != "" {
		t.Skip("MINIPIPE_SKIP_REAL is set: skipping the image build (Debian packages, a cgo build)")
	}
	out := t.TempDir()
	cmd := exec.Command(filepath.Join(testkit.Root(), "deploy", "image.sh"), "--out", out, "--tag", "minipipe:imagetest")
	cmd.Env = append(os.Environ(), "VERSION=imagetest")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("deploy/image.sh: %v\n%s", err, b)
	}

	idx, err := layout.ImageIndexFromPath(filepath.Join(out, "image"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].MediaType != types.OCIManifestSchema1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "imagetest" {
		t.Fatalf("the layout's index: %+v", im.Manifests)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 2 {
		t.Fatalf("manifest: config %s, %d layers", m.Config.MediaType, len(m.Layers))
	}
	for _, l := range m.Layers {
		if l.MediaType != types.OCILayer {
			t.Fatalf("layer media type %s", l.MediaType)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if !slices.Equal(c.Entrypoint, []string{binPath}) || !slices.Equal(c.Cmd, []string{"run", "--config", "/etc/minipipe/minipipe.yaml"}) {
		t.Fatalf("entrypoint %q, cmd %q", c.Entrypoint, c.Cmd)
	}
	if u, _, _ := strings.Cut(c.User, ":"); u == "" || u == "0" || strings.Trim(u, "0123456789") != "" {
		t.Fatalf("user %q: Kubernetes' runAsNonRoot needs a numeric user other than 0", c.User)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || c.Labels["org.opencontainers.image.version"] != "imagetest" {
		t.Fatalf("platform %s/%s, labels %v", cf.OS, cf.Architecture, c.Labels)
	}
	// The ports the image exposes are the chart's, which its policy test ties to minipipe's listeners.
	var values struct{ Ports map[string]int }
	vb, err := os.ReadFile(filepath.Join(testkit.Root(), "deploy", "helm", "minipipe", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(vb, &values); err != nil {
		t.Fatal(err)
	}
	var want, got []string
	for _, p := range values.Ports {
		want = append(want, strconv.Itoa(p)+"/tcp")
	}
	for p := range c.ExposedPorts {
		got = append(got, p)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("exposed ports %v, the chart's %v", got, want)
	}

	// The tarball is the same image.
	timg, err := tarball.ImageFromPath(filepath.Join(out, "minipipe-image.tar"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cn, _ := img.ConfigName()
	tcn, err := timg.ConfigName()
	if err != nil || tcn != cn {
		t.Fatalf("the tarball's config %v (%v), the layout's %v", tcn, err, cn)
	}

	// Unpacked, the image is a root file system the binary runs in.
	root := filepath.Join(out, "rootfs")
	mode := unpack(t, img, root)
	if mode != 0o755 {
		t.Fatalf("%s has mode %o", binPath, mode)
	}
	bin := filepath.Join(root, binPath)
	var version []byte
	if os.Geteuid() == 0 {
		version, err = exec.Command("chroot", "--userspec="+c.User, root, binPath, "--version").CombinedOutput()
	} else {
		// Without root: the image's own dynamic loader and libraries, not the machine's.
		libs := filepath.Join(root, "lib/x86_64-linux-gnu") + ":" + filepath.Join(root, "usr/lib/x86_64-linux-gnu")
		version, err = exec.Command(filepath.Join(root, "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"), "--inhibit-cache", "--library-path", libs, bin, "--version").CombinedOutput()
	}
	if err != nil || strings.TrimSpace(string(version)) != "minipipe imagetest" {
		t.Fatalf("minipipe --version in the image: %v\n%s", err, version)
	}
	t.Logf("%s: %s, %d layers, config %s", im.Manifests[0].Digest, strings.TrimSpace(string(version)), len(m.Layers), cn)

	if os.Geteuid() != 0 {
		t.Log("not root: minipipe run inside the image's file system (chroot) is not tried")
		return
	}
	// minipipe run in the image, as its user, with its data directory and CA bundle, on the real broker.
	cfg := testkit.TestConfig(t, testkit.Kafka(t))
	cfg.DataDir = "/var/lib/minipipe"
	cfg.Warehouse = "file:///var/lib/minipipe/warehouse"
	cfg.InsecureNoAuth = true
	args := append([]string{"--userspec=" + c.User, root, binPath}, testkit.Args(cfg)...)
	args = append(args, "--config", "/etc/minipipe/minipipe.yaml")
	run := exec.Command("chroot", args...)
	var log strings.Builder
	run.Stdout, run.Stderr = &log, &log
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = run.Wait(); close(exited) }()
	t.Cleanup(func() { _ = run.Process.Kill(); <-exited })
	if err := testkit.WaitReady("http://"+cfg.HTTPAddr, 90*time.Second, exited); err != nil {
		t.Fatalf("minipipe run in the image: %v\n%s", err, log.String())
	}
	t.Logf("minipipe run in the image is ready on %s", cfg.HTTPAddr)
}

// unpack writes the image's file system (its layers applied in order) into dir, and returns the binary's mode.
func unpack(t *testing.T, img v1.Image, dir string) os.FileMode {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var binMode os.FileMode
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
			if err == nil {
				err = os.Chmod(p, os.FileMode(h.Mode&0o777)|modeBits(h.Mode))
			}
			if err == nil && os.Geteuid() == 0 {
				err = os.Lchown(p, h.Uid, h.Gid)
			}
		case tar.TypeReg:
			if "/"+h.Name == binPath {
				binMode = os.FileMode(h.Mode & 0o7777)
			}
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				break
			}
			var f *os.File
			if f, err = os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode&0o777)); err != nil {
				break
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		case tar.TypeSymlink:
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				err = os.Symlink(h.Linkname, p)
			}
		case tar.TypeLink:
			err = os.Link(filepath.Join(dir, filepath.Clean("/"+h.Linkname)), p)
		}
		if err != nil {
			t.Fatalf("unpacking %s: %v", h.Name, err)
		}
	}
	return binMode
}

func modeBits(m int64) os.FileMode {
	var b os.FileMode
	if m&0o1000 != 0 {
		b |= os.ModeSticky
	}
	return b
}
