// Command image builds minipipe's OCI image without a container engine (`make image` runs it through
// deploy/image.sh): a base layer made of Debian packages (the C and C++ runtime DuckDB's cgo needs, CA
// certificates, time zones), unpacked with dpkg-deb like distroless does it, and a layer with the minipipe binary.
// It writes an OCI image layout (a directory) and a tarball `docker load`, `podman load` and `crane push` read.
// The image is reproducible: every time stamp is --epoch.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's user: not root, numeric so that Kubernetes' runAsNonRoot can check it (distroless's "nonroot").
const (
	uid     = 65532
	dataDir = "/var/lib/minipipe"
	binPath = "/usr/local/bin/minipipe"
)

// Ports minipipe's config in the image listens on: the REST Proxy, the Schema Registry and the console with
// /metrics, /healthz and /readyz (the chart's ports).
var ports = []string{"8082/tcp", "8081/tcp", "8080/tcp"}

// defaultConfig is the image's /etc/minipipe/minipipe.yaml; a deployment mounts its own over it.
const defaultConfig = `# minipipe's config file in the image: mount your own here (the Helm chart does). Every flag of
# ` + "`minipipe run`" + ` is a key. Listeners reachable from other machines need auth-file (or insecure-no-auth).
data-dir: /var/lib/minipipe
rest-addr: 0.0.0.0:8082
registry-addr: 0.0.0.0:8081
http-addr: 0.0.0.0:8080
log-format: json
`

// Paths of the packages that the image does not need.
var skipped = []string{"usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/lintian/", "usr/share/gcc/", "usr/share/gdb/", "usr/share/locale/"}

func main() {
	var (
		binary  = flag.String("binary", "", "the minipipe binary")
		debs    = flag.String("debs", "", "directory of the Debian packages of the base layer (.deb)")
		out     = flag.String("layout", "", "write an OCI image layout into this directory")
		tarPath = flag.String("tar", "", "write the image as a tarball (docker load, podman load, crane push)")
		tag     = flag.String("tag", "minipipe:dev", "the image's name and tag")
		version = flag.String("version", "dev", "minipipe's version, for the image's labels")
		source  = flag.String("source", "https://github.com/minipipe/minipipe", "the source repository label")
		epoch   = flag.Int64("epoch", 0, "Unix time of every time stamp in the image (SOURCE_DATE_EPOCH)")
	)
	flag.Parse()
	if *binary == "" || *debs == "" || (*out == "" && *tarPath == "") {
		fmt.Fprintln(os.Stderr, "usage: image --binary FILE --debs DIR [--layout DIR] [--tar FILE] [--tag NAME:TAG]")
		os.Exit(2)
	}
	if err := build(*binary, *debs, *out, *tarPath, *tag, *version, *source, time.Unix(*epoch, 0).UTC()); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func build(binary, debs, out, tarPath, tag, version, source string, created time.Time) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("--tag %q: %w", tag, err)
	}
	base, pkgs, err := baseLayer(debs, created)
	if err != nil {
		return err
	}
	app, err := appLayer(binary, created)
	if err != nil {
		return err
	}
	img, err := mutate.Append(empty.Image,
		mutate.Addendum{Layer: layer(base), History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "minipipe deploy/image: Debian " + strings.Join(pkgs, " "), Comment: "base"}},
		mutate.Addendum{Layer: layer(app), History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "minipipe deploy/image: " + binPath, Comment: "minipipe " + version}})
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = runtime.GOARCH, "linux" // the binary and the packages are this machine's
	cf.Created = v1.Time{Time: created}
	cf.Config = v1.Config{
		Entrypoint:   []string{binPath},
		Cmd:          []string{"run", "--config", "/etc/minipipe/minipipe.yaml"},
		User:         fmt.Sprintf("%d:%d", uid, uid),
		WorkingDir:   dataDir,
		Env:          []string{"PATH=/usr/local/bin:/usr/bin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
		ExposedPorts: map[string]struct{}{},
		Volumes:      map[string]struct{}{dataDir: {}},
		StopSignal:   "SIGTERM",
		Labels: map[string]string{
			"org.opencontainers.image.title":       "minipipe",
			"org.opencontainers.image.description": "Confluent REST Proxy and Schema Registry APIs, Kafka to Parquet tables committed exactly once",
			"org.opencontainers.image.version":     version,
			"org.opencontainers.image.source":      source,
			"org.opencontainers.image.created":     created.Format(time.RFC3339),
			"io.minipipe.base.packages":            strings.Join(pkgs, " "),
		},
	}
	for _, p := range ports {
		cf.Config.ExposedPorts[p] = struct{}{}
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	if out != "" {
		if err := os.RemoveAll(out); err != nil {
			return err
		}
		p, err := layout.Write(out, empty.Index)
		if err != nil {
			return err
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref.TagStr()})); err != nil {
			return err
		}
	}
	if tarPath != "" {
		if err := tarball.WriteToFile(tarPath, ref, img); err != nil {
			return err
		}
	}
	fmt.Printf("%s %s\n", ref.String(), digest)
	return nil
}

func layer(b []byte) v1.Layer {
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		panic(err) // only a failing opener errs, and this one does not
	}
	return l
}

// baseLayer unpacks the Debian packages of dir into one layer, with what a minimal root file system needs
// besides: users, a CA bundle, /tmp, the data directory, and the packages' records for image scanners.
func baseLayer(dir string, created time.Time) ([]byte, []string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.deb"))
	if err != nil || len(files) == 0 {
		return nil, nil, fmt.Errorf("no Debian packages in %s (deploy/image.sh downloads them)", dir)
	}
	sort.Strings(files)
	w := newLayerWriter(created)
	var pkgs []string
	var certs bytes.Buffer
	for _, deb := range files {
		control, err := exec.Command("dpkg-deb", "--field", deb).Output()
		if err != nil {
			return nil, nil, fmt.Errorf("dpkg-deb --field %s: %w", deb, err)
		}
		pkg := field(control, "Package")
		pkgs = append(pkgs, pkg+"="+field(control, "Version"))
		cmd := exec.Command("dpkg-deb", "--fsys-tarfile", deb)
		r, err := cmd.StdoutPipe()
		if err != nil {
			return nil, nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, nil, err
		}
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", deb, err)
			}
			p := strings.TrimPrefix(path.Clean(h.Name), "./")
			if p == "." || skip(p) {
				continue
			}
			var body []byte
			if h.Typeflag == tar.TypeReg {
				if body, err = io.ReadAll(tr); err != nil {
					return nil, nil, err
				}
				// update-ca-certificates' bundle, made here as the package's script would.
				if strings.HasPrefix(p, "usr/share/ca-certificates/") && strings.HasSuffix(p, ".crt") {
					certs.Write(body)
					if len(body) > 0 && body[len(body)-1] != '\n' {
						certs.WriteByte('\n')
					}
				}
			}
			if err := w.add(p, h, body); err != nil {
				return nil, nil, err
			}
		}
		if err := cmd.Wait(); err != nil {
			return nil, nil, fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w", deb, err)
		}
		// The package's record, where distroless keeps it, so that image scanners see what is installed.
		if err := w.file("var/lib/dpkg/status.d/"+pkg, 0o644, 0, append(bytes.TrimRight(control, "\n"), '\n')); err != nil {
			return nil, nil, err
		}
	}
	if certs.Len() == 0 {
		return nil, nil, errors.New("no CA certificates among the packages (ca-certificates)")
	}
	extra := []struct {
		path string
		mode int64
		uid  int
		body string
	}{
		{"etc/ssl/certs/ca-certificates.crt", 0o644, 0, certs.String()},
		{"etc/passwd", 0o644, 0, fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:%s:/sbin/nologin\n", uid, uid, dataDir)},
		{"etc/group", 0o644, 0, fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", uid)},
		{"etc/nsswitch.conf", 0o644, 0, "passwd: files\ngroup: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n"},
		{"etc/minipipe/minipipe.yaml", 0o644, 0, defaultConfig},
	}
	for _, e := range extra {
		if err := w.file(e.path, e.mode, e.uid, []byte(e.body)); err != nil {
			return nil, nil, err
		}
	}
	if err := w.dir("tmp", 0o1777, 0); err != nil {
		return nil, nil, err
	}
	if err := w.dir(strings.TrimPrefix(dataDir, "/"), 0o750, uid); err != nil {
		return nil, nil, err
	}
	b, err := w.close()
	return b, pkgs, err
}

// appLayer holds the binary, executable by everyone.
func appLayer(binary string, created time.Time) ([]byte, error) {
	body, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	w := newLayerWriter(created)
	if err := w.file(strings.TrimPrefix(binPath, "/"), 0o755, 0, body); err != nil {
		return nil, err
	}
	return w.close()
}

func skip(p string) bool {
	// Each package's licence stays, as in distroless.
	if d, f := path.Split(p); f == "copyright" && path.Dir(path.Clean(d)) == "usr/share/doc" {
		return false
	}
	for _, s := range skipped {
		if strings.HasPrefix(p+"/", s) {
			return true
		}
	}
	return false
}

func field(control []byte, name string) string {
	for _, line := range strings.Split(string(control), "\n") {
		if v, ok := strings.CutPrefix(line, name+": "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// layerWriter writes a layer's tar: entries owned by root unless said otherwise, every time stamp the same,
// parent directories made as needed, each path once.
type layerWriter struct {
	buf     bytes.Buffer
	tw      *tar.Writer
	created time.Time
	seen    map[string]bool
}

func newLayerWriter(created time.Time) *layerWriter {
	w := &layerWriter{created: created, seen: map[string]bool{}}
	w.tw = tar.NewWriter(&w.buf)
	return w
}

func (w *layerWriter) parents(p string) error {
	if d := path.Dir(p); d != "." && !w.seen[d] {
		return w.dir(d, 0o755, 0)
	}
	return nil
}

func (w *layerWriter) dir(p string, mode int64, owner int) error {
	if w.seen[p] {
		return nil
	}
	if err := w.parents(p); err != nil {
		return err
	}
	w.seen[p] = true
	return w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode, Uid: owner, Gid: owner, ModTime: w.created, Format: tar.FormatPAX})
}

func (w *layerWriter) file(p string, mode int64, owner int, body []byte) error {
	if w.seen[p] {
		return fmt.Errorf("%s twice in a layer", p)
	}
	if err := w.parents(p); err != nil {
		return err
	}
	w.seen[p] = true
	if err := w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Uid: owner, Gid: owner, Size: int64(len(body)), ModTime: w.created, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := w.tw.Write(body)
	return err
}

// add copies a package's entry: directories, files, symbolic and hard links, with its mode.
func (w *layerWriter) add(p string, h *tar.Header, body []byte) error {
	mode := h.Mode & 0o7777
	switch h.Typeflag {
	case tar.TypeDir:
		return w.dir(p, mode, 0)
	case tar.TypeReg:
		return w.file(p, mode, 0, body)
	case tar.TypeSymlink, tar.TypeLink:
		if w.seen[p] {
			return fmt.Errorf("%s twice in a layer", p)
		}
		if err := w.parents(p); err != nil {
			return err
		}
		w.seen[p] = true
		target := h.Linkname
		if h.Typeflag == tar.TypeLink {
			target = strings.TrimPrefix(path.Clean(target), "./")
		}
		return w.tw.WriteHeader(&tar.Header{Typeflag: h.Typeflag, Name: p, Linkname: target, Mode: mode, ModTime: w.created, Format: tar.FormatPAX})
	default:
		return fmt.Errorf("%s: unexpected tar entry type %s", p, strconv.Quote(string(h.Typeflag)))
	}
}

func (w *layerWriter) close() ([]byte, error) {
	if err := w.tw.Close(); err != nil {
		return nil, err
	}
	return w.buf.Bytes(), nil
}
