// Package helm_test is `make deploy-check`: the chart in deploy/helm/minipipe linted and rendered by Helm (pinned,
// from the Go module proxy) for its default values and each example, every rendered object decoded strictly into
// the Kubernetes API's Go types (KEDA's objects against KEDA's own CRD schemas), and the policies a reviewer would
// check: probes, resources, non-root, no secret in a ConfigMap, and Services naming the ports minipipe serves.
package helm_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/santhosh-tekuri/jsonschema/v6"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/minipipe/minipipe/testkit"
	"github.com/minipipe/minipipe/topology"
)

// kubeVersion is the Kubernetes version the chart is rendered for (its Chart.yaml asks for 1.27 or newer).
const kubeVersion = "1.33.0"

// kedaVersion is the KEDA release whose CRDs (read from its Go module) check the ScaledObject and
// TriggerAuthentication.
const kedaVersion = "v2.18.1"

// valueSets are the chart's default values and its examples, each with the secrets it names: none of them may
// reach a ConfigMap.
var valueSets = []struct {
	name    string
	files   []string
	set     []string
	secrets []string
}{
	{name: "default"},
	{name: "seed-stack", files: []string{"examples/seed-stack.yaml"}},
	{name: "managed-kafka-sasl", files: []string{"examples/managed-kafka-sasl.yaml"},
		set:     []string{"kafka.sasl.password=Sup3r-s3cret-pw", "auth.users=alice:$2a$10$abcdefghijklmnopqrstuvCNkrcEqyNmUpDkNoaTb7Hq0x8LeDMtG:admin"},
		secrets: []string{"Sup3r-s3cret-pw", "$2a$10$abcdefghijklmnopqrstuv"}},
	// The managed Kafka with KEDA instead of the HPA, and the Secrets made by the chart from values.
	{name: "keda-sasl-chart-secrets", files: []string{"examples/managed-kafka-sasl.yaml"},
		set: []string{"autoscaling.enabled=false", "keda.enabled=true", "keda.topics={orders,payments}",
			"kafka.sasl.existingSecret=", "kafka.sasl.password=Sup3r-s3cret-pw", "kafka.tls.existingSecret=kafka-ca",
			"auth.existingSecret=", "auth.users=alice:$2a$10$abcdefghijklmnopqrstuvCNkrcEqyNmUpDkNoaTb7Hq0x8LeDMtG:admin"},
		secrets: []string{"Sup3r-s3cret-pw", "$2a$10$abcdefghijklmnopqrstuv"}},
}

// TestChart lints and renders every value set, decodes each object strictly and checks the policies.
func TestChart(t *testing.T) {
	helm := testkit.Helm(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			args := []string{}
			for _, f := range vs.files {
				args = append(args, "-f", f)
			}
			for _, s := range vs.set {
				args = append(args, "--set", s)
			}
			run(t, helm, append([]string{"lint", "--strict", "minipipe"}, args...)...)
			out := run(t, helm, append([]string{"template", "rel", "minipipe", "--namespace", "data", "--kube-version", kubeVersion}, args...)...)
			r, err := decode(out)
			if err != nil {
				t.Fatalf("rendered objects: %v", err)
			}
			if err := r.validateCRs(t); err != nil {
				t.Fatal(err)
			}
			if v := r.policy(t, vs.secrets); len(v) > 0 {
				t.Fatalf("policy violations:\n  %s", strings.Join(v, "\n  "))
			}
			t.Logf("%d objects: %s", len(r.kinds), strings.Join(r.kinds, ", "))
		})
	}
}

// TestChartChecksCanFail: each check refuses what it is there to refuse.
func TestChartChecksCanFail(t *testing.T) {
	helm := testkit.Helm(t)
	base := run(t, helm, "template", "rel", "minipipe", "--kube-version", kubeVersion)

	// The chart itself refuses secrets and keys it owns in config; its values schema refuses misspelt or
	// mistyped values.
	for set, want := range map[string]string{
		"config.kafka-sasl-password=hunter2": "looks like a secret", "config.s3-secret-key=x": "looks like a secret",
		"config.rest-addr=0.0.0.0:1": "is set by the chart", "replicaCont=3": "'replicaCont' not allowed",
		"kafka.sasl.mechanism=GSSAPI": "/kafka/sasl/mechanism", "ports.rest=0": "/ports/rest",
		"config.rotate-interval=1 minute": "/config/rotate-interval", "keda.topics={../x}": "/keda/topics/0",
		"config.warehouse=file:///var/lib/minipipe/warehouse": "every pod must share it", "config.trino=http://u:pw@trino:8080": "password in a URL",
		"kafka.sasl.mechanism=PLAIN,kafka.sasl.username=u": "kafka.sasl.mechanism needs", "config.pipeline-name=a.b": "/config/pipeline-name",
	} {
		cmd := exec.Command(helm, "template", "rel", "minipipe", "--kube-version", kubeVersion, "--set", set)
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), want) {
			t.Errorf("--set %s: want an error naming %q, got %v:\n%.500s", set, want, err, out)
		}
	}
	// Strict decoding: an unknown field, a misspelt one, a duplicate.
	for _, doc := range []string{
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 3}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 1, targetport: http}]}\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\ndata: {c: d}\n",
		"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
	} {
		if _, err := decode([]byte(doc)); err == nil {
			t.Errorf("decoded without an error:\n%s", doc)
		}
	}
	// KEDA's schema: a field KEDA does not know.
	so := "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec: {scaleTargetRef: {name: x}, triggers: [{type: kafka, metadata: {topic: t}}], minReplicas: 2}\n"
	if r, err := decode([]byte(so)); err != nil {
		t.Fatal(err)
	} else if err := r.validateCRs(t); err == nil || !strings.Contains(err.Error(), "minReplicas") {
		t.Errorf("a ScaledObject with minReplicas (KEDA's is minReplicaCount) passed: %v", err)
	}

	mutations := []struct {
		name   string
		mutate func(r *rendered)
		want   string
	}{
		{"no readiness probe", func(r *rendered) { r.container().ReadinessProbe = nil }, "readiness"},
		{"liveness on another path", func(r *rendered) { r.container().LivenessProbe.HTTPGet.Path = "/" }, "liveness"},
		{"root allowed", func(r *rendered) { f := false; r.deploy.Spec.Template.Spec.SecurityContext.RunAsNonRoot = &f }, "non-root"},
		{"writable root", func(r *rendered) { f := false; r.container().SecurityContext.ReadOnlyRootFilesystem = &f }, "read-only"},
		{"no memory limit", func(r *rendered) { delete(r.container().Resources.Limits, corev1.ResourceMemory) }, "memory"},
		{"no cpu request", func(r *rendered) { delete(r.container().Resources.Requests, corev1.ResourceCPU) }, "cpu"},
		{"container port moved", func(r *rendered) { r.container().Ports[0].ContainerPort = 9999 }, "serves"},
		{"service to a missing port", func(r *rendered) { r.services[0].Spec.Ports[0].TargetPort = intstr.FromString("web") }, "no container port"},
		{"short grace", func(r *rendered) { g := int64(5); r.deploy.Spec.Template.Spec.TerminationGracePeriodSeconds = &g }, "grace"},
		{"password in a ConfigMap", func(r *rendered) { r.configMaps[0].Data["minipipe.yaml"] += "kafka-sasl-password: hunter2\n" }, "unknown key"},
		{"private key in a ConfigMap", func(r *rendered) {
			r.configMaps[0].Data["tls.key"] = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
		}, "secret"},
		{"users file in a ConfigMap", func(r *rendered) {
			r.configMaps[0].Data["users"] = "alice:$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA:admin\n"
		}, "secret"},
		{"data dir not an emptyDir", func(r *rendered) {
			for i, v := range r.deploy.Spec.Template.Spec.Volumes {
				if v.EmptyDir != nil && v.Name == "data" {
					r.deploy.Spec.Template.Spec.Volumes[i].VolumeSource = corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/data"}}
				}
			}
		}, "hostPath"},
		{"warehouse in the pod", func(r *rendered) {
			r.configMaps[0].Data["minipipe.yaml"] = strings.Replace(r.configMaps[0].Data["minipipe.yaml"], "warehouse: hdfs://namenode:8020/warehouse", "warehouse: file:///var/lib/minipipe/warehouse", 1)
		}, "vanish with the pod"},
		{"literal secret in env", func(r *rendered) {
			r.container().Env = append(r.container().Env, corev1.EnvVar{Name: "MINIPIPE_KAFKA_SASL_PASSWORD", Value: "hunter2"})
		}, "literal value"},
		{"password in a URL", func(r *rendered) {
			r.configMaps[0].Data["minipipe.yaml"] += "trino: http://u:pw@trino:8080\n"
		}, "password in the URL"},
		{"no shutdown delay", func(r *rendered) {
			r.configMaps[0].Data["minipipe.yaml"] = strings.Replace(r.configMaps[0].Data["minipipe.yaml"], "shutdown-delay: 5s", "shutdown-delay: 0s", 1)
		}, "no shutdown-delay"},
		{"a name too long", func(r *rendered) { r.services[0].Name = strings.Repeat("r", 60) + "-rest" }, "Service name"},
		{"selector misses the pods", func(r *rendered) { r.services[1].Spec.Selector = map[string]string{"app": "other"} }, "selects no pod"},
	}
	for _, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			r, err := decode(base)
			if err != nil {
				t.Fatal(err)
			}
			m.mutate(r)
			v := r.policy(t, nil)
			if !strings.Contains(strings.Join(v, "\n"), m.want) {
				t.Fatalf("want a violation naming %q, got %q", m.want, v)
			}
		})
	}
}

func run(t *testing.T, helm string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(helm, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// rendered is a chart's objects, decoded.
type rendered struct {
	kinds          []string
	deploy         *appsv1.Deployment
	services       []*corev1.Service
	configMaps     []*corev1.ConfigMap
	secrets        []*corev1.Secret
	pdbs           []*policyv1.PodDisruptionBudget
	hpas           []*autoscalingv2.HorizontalPodAutoscaler
	serviceMonitor []*monitoringv1.ServiceMonitor
	accounts       []*corev1.ServiceAccount
	custom         []custom // KEDA's objects, checked against KEDA's CRD schemas
	names          []string // every object's name
}

type custom struct {
	kind string
	obj  map[string]any
}

// decode splits a multi-document YAML stream and decodes each object strictly (unknown or duplicate fields
// fail) into its Kubernetes Go type; a kind the chart is not expected to render fails too.
func decode(stream []byte) (*rendered, error) {
	r := &rendered{}
	reader := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, err
		}
		if tm.Kind == "" {
			if strings.TrimSpace(commentLines.ReplaceAllString(string(doc), "")) != "" {
				return nil, fmt.Errorf("a document without a kind:\n%s", doc)
			}
			continue // an empty document, or only comments
		}
		// As the API server decodes with strict field validation: duplicate fields, unknown fields and fields
		// in the wrong case are errors.
		into := func(obj any) error {
			j, err := yaml.YAMLToJSONStrict(doc)
			if err == nil {
				var strict []error
				strict, err = sigsjson.UnmarshalStrict(j, obj)
				if err == nil && len(strict) > 0 {
					err = errors.Join(strict...)
				}
			}
			if err != nil {
				return fmt.Errorf("%s %s: %w\n%s", tm.APIVersion, tm.Kind, err, doc)
			}
			return nil
		}
		r.kinds = append(r.kinds, tm.Kind)
		var meta struct{ Metadata metav1.ObjectMeta }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, err
		}
		r.names = append(r.names, meta.Metadata.Name)
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			if r.deploy != nil {
				return nil, errors.New("two Deployments")
			}
			r.deploy = &appsv1.Deployment{}
			err = into(r.deploy)
		case "v1 Service":
			o := &corev1.Service{}
			err = into(o)
			r.services = append(r.services, o)
		case "v1 ConfigMap":
			o := &corev1.ConfigMap{}
			err = into(o)
			r.configMaps = append(r.configMaps, o)
		case "v1 Secret":
			o := &corev1.Secret{}
			err = into(o)
			r.secrets = append(r.secrets, o)
		case "v1 ServiceAccount":
			o := &corev1.ServiceAccount{}
			err = into(o)
			r.accounts = append(r.accounts, o)
		case "policy/v1 PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			err = into(o)
			r.pdbs = append(r.pdbs, o)
		case "autoscaling/v2 HorizontalPodAutoscaler":
			o := &autoscalingv2.HorizontalPodAutoscaler{}
			err = into(o)
			r.hpas = append(r.hpas, o)
		case "monitoring.coreos.com/v1 ServiceMonitor":
			o := &monitoringv1.ServiceMonitor{}
			err = into(o)
			r.serviceMonitor = append(r.serviceMonitor, o)
		case "keda.sh/v1alpha1 ScaledObject", "keda.sh/v1alpha1 TriggerAuthentication":
			var o map[string]any
			err = into(&o)
			r.custom = append(r.custom, custom{kind: tm.Kind, obj: o})
		default:
			return nil, fmt.Errorf("unexpected object %s %s", tm.APIVersion, tm.Kind)
		}
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// validateCRs checks KEDA's objects against the openAPIV3Schema of KEDA's CRDs (from KEDA's Go module), with
// unknown fields refused as the API server's strict field validation refuses them.
func (r *rendered) validateCRs(t *testing.T) error {
	for _, c := range r.custom {
		sch := kedaSchema(t, c.kind)
		b, err := json.Marshal(c.obj)
		if err != nil {
			return err
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return err
		}
		if err := sch.Validate(inst); err != nil {
			return fmt.Errorf("%s against KEDA %s's CRD: %w", c.kind, kedaVersion, err)
		}
	}
	return nil
}

var kedaSchemas = map[string]*jsonschema.Schema{}

func kedaSchema(t *testing.T, kind string) *jsonschema.Schema {
	t.Helper()
	if s := kedaSchemas[kind]; s != nil {
		return s
	}
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/kedacore/keda/v2@"+kedaVersion).Output()
	if err != nil {
		t.Fatalf("go mod download KEDA %s: %v", kedaVersion, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download KEDA: %v %s", err, out)
	}
	file := map[string]string{"ScaledObject": "keda.sh_scaledobjects.yaml", "TriggerAuthentication": "keda.sh_triggerauthentications.yaml"}[kind]
	b, err := os.ReadFile(filepath.Join(mod.Dir, "config", "crd", "bases", file))
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Name   string
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				}
			}
		}
	}
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	for _, v := range crd.Spec.Versions {
		if v.Name != "v1alpha1" {
			continue
		}
		root := v.Schema.OpenAPIV3Schema
		closeObjects(root)
		c := jsonschema.NewCompiler()
		if err := c.AddResource(kind+".json", root); err != nil {
			t.Fatal(err)
		}
		s, err := c.Compile(kind + ".json")
		if err != nil {
			t.Fatal(err)
		}
		kedaSchemas[kind] = s
		return s
	}
	t.Fatalf("KEDA's %s has no v1alpha1 schema", file)
	return nil
}

// closeObjects refuses unknown fields where the schema lists the properties (as strict field validation does),
// except where it says x-kubernetes-preserve-unknown-fields; metadata is checked by the API server itself.
func closeObjects(s map[string]any) {
	if props, ok := s["properties"].(map[string]any); ok {
		if _, has := s["additionalProperties"]; !has && s["x-kubernetes-preserve-unknown-fields"] != true {
			s["additionalProperties"] = false
		}
		for name, p := range props {
			if m, ok := p.(map[string]any); ok && name != "metadata" {
				closeObjects(m)
			}
		}
	}
	for _, k := range []string{"items", "additionalProperties"} {
		if m, ok := s[k].(map[string]any); ok {
			closeObjects(m)
		}
	}
	for _, k := range []string{"anyOf", "allOf", "oneOf"} {
		if l, ok := s[k].([]any); ok {
			for _, e := range l {
				if m, ok := e.(map[string]any); ok {
					closeObjects(m)
				}
			}
		}
	}
}

func (r *rendered) container() *corev1.Container {
	return &r.deploy.Spec.Template.Spec.Containers[0]
}

// commentLines are YAML comment lines.
var commentLines = regexp.MustCompile(`(?m)^\s*#.*$`)

// urlPassword is a URL with a password in it.
var urlPassword = regexp.MustCompile(`://[^/@\s]*:[^/@\s]*@`)

// secretLike is what must never be in a ConfigMap: PEM private keys and password hashes of a users file.
var secretLike = regexp.MustCompile(`PRIVATE KEY-----|\$2[aby]\$\d\d\$|\$argon2id\$`)

// secretKey is a config key naming a secret value (a -file key names where one is).
var secretKey = regexp.MustCompile(`(?i)password|secret|token|private|credential`)

// policy returns what a reviewer of the rendered objects would refuse.
func (r *rendered) policy(t *testing.T, secrets []string) []string {
	t.Helper()
	var v []string
	bad := func(format string, a ...any) { v = append(v, fmt.Sprintf(format, a...)) }
	if r.deploy == nil {
		return []string{"no Deployment"}
	}
	pod := r.deploy.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		return []string{fmt.Sprintf("%d containers, want minipipe alone", len(pod.Containers))}
	}
	c := r.container()

	// No secret in a ConfigMap.
	for _, cm := range r.configMaps {
		for k, val := range cm.Data {
			if secretLike.MatchString(val) {
				bad("ConfigMap %s key %s holds a secret (a private key or a password hash)", cm.Name, k)
			}
			for _, s := range secrets {
				if strings.Contains(val, s) {
					bad("ConfigMap %s key %s holds the secret %q given in the values", cm.Name, k, s)
				}
			}
		}
	}

	// The config file: the one the container is told to read, from the ConfigMap, and every key known to minipipe.
	var cfg topology.Config
	cfgPath := ""
	for i, a := range c.Args {
		if a == "--config" && i+1 < len(c.Args) {
			cfgPath = c.Args[i+1]
		}
	}
	if len(c.Args) == 0 || c.Args[0] != "run" || cfgPath == "" {
		bad("the container runs %q, not `minipipe run --config FILE`", c.Args)
		return v
	}
	mount, vol := r.mountOf(cfgPath)
	switch {
	case vol == nil || vol.ConfigMap == nil:
		bad("%s is not mounted from a ConfigMap", cfgPath)
		return v
	default:
		text, ok := r.configMap(vol.ConfigMap.Name)[mount.SubPath]
		if !ok {
			bad("ConfigMap %s has no key %q for %s", vol.ConfigMap.Name, mount.SubPath, cfgPath)
			return v
		}
		var err error
		if cfg, err = r.loadAsPod(t, text); err != nil {
			bad("minipipe refuses the rendered config: %v", err)
			return v
		}
		for _, line := range strings.Split(text, "\n") {
			key, _, _ := strings.Cut(line, ":")
			if secretKey.MatchString(key) && !strings.HasSuffix(key, "-file") {
				bad("the config file (a ConfigMap) sets %s: a secret belongs in a Secret", key)
			}
		}
	}

	for _, u := range []string{cfg.Warehouse, cfg.HiveMetastore, cfg.Trino} {
		if urlPassword.MatchString(u) {
			bad("the config file (a ConfigMap) holds a password in the URL %s", u)
		}
	}
	for _, e := range c.Env {
		if secretKey.MatchString(e.Name) && e.Value != "" {
			bad("environment variable %s holds a literal value: a secret belongs in a Secret (valueFrom.secretKeyRef)", e.Name)
		}
	}

	// The warehouse is shared by every pod: remote, or a volume that is not the pod's own.
	switch wh := cfg.WarehouseURL(); {
	case strings.HasPrefix(wh, "hdfs://"), strings.HasPrefix(wh, "s3://"):
	case strings.HasPrefix(wh, "file://"):
		if _, vol := r.mountOf(strings.TrimPrefix(wh, "file://")); vol == nil || vol.EmptyDir != nil || vol.PersistentVolumeClaim == nil {
			bad("warehouse %s is in the pod's own files: committed tables would vanish with the pod", wh)
		}
	default:
		bad("warehouse %s: not one every pod shares", wh)
	}

	// Names the API server takes.
	for _, svc := range r.services {
		if errs := validation.IsDNS1035Label(svc.Name); len(errs) > 0 {
			bad("Service name %q: %s", svc.Name, strings.Join(errs, "; "))
		}
	}
	for _, name := range r.names {
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			bad("name %q: %s", name, strings.Join(errs, "; "))
		}
	}

	// Ports: minipipe's listeners are the container's named ports, the probes' and the Services'.
	served := map[string]string{"rest": cfg.RestAddr, "registry": cfg.RegistryAddr, "http": cfg.HTTPAddr}
	byName := map[string]int32{}
	for _, p := range c.Ports {
		byName[p.Name] = p.ContainerPort
	}
	for name, addr := range served {
		_, port, _ := strings.Cut(addr, ":")
		want, _ := strconv.Atoi(port)
		if byName[name] != int32(want) {
			bad("container port %q is %d but minipipe serves %s on %s", name, byName[name], name, addr)
		}
	}
	for _, svc := range r.services {
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(r.deploy.Spec.Template.Labels)) || len(svc.Spec.Selector) == 0 {
			bad("Service %s selects no pod of the Deployment", svc.Name)
		}
		for _, p := range svc.Spec.Ports {
			target := p.TargetPort
			ok := false
			for _, cp := range c.Ports {
				if (target.Type == intstr.String && target.StrVal == cp.Name) || (target.Type == intstr.Int && target.IntVal == cp.ContainerPort) {
					ok = served[cp.Name] != ""
				}
			}
			if !ok {
				bad("Service %s port %s targets %s: no container port minipipe serves", svc.Name, p.Name, target.String())
			}
		}
	}

	// Probes: liveness on /healthz, readiness on /readyz, on the http listener, HTTPS when it is.
	scheme := corev1.URISchemeHTTP
	if cfg.TLSCert != "" {
		scheme = corev1.URISchemeHTTPS
	}
	for _, p := range []struct {
		kind  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		switch {
		case p.probe == nil || p.probe.HTTPGet == nil:
			bad("no %s probe", p.kind)
		case p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "http" || p.probe.HTTPGet.Scheme != scheme:
			bad("%s probe is %s %s%s, want %s http%s", p.kind, p.probe.HTTPGet.Scheme, p.probe.HTTPGet.Port.String(), p.probe.HTTPGet.Path, scheme, p.path)
		}
	}

	// Resources: requests for scheduling, a memory limit above minipipe's own soft limit.
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[res]; !ok {
			bad("no %s request", res)
		}
	}
	if lim, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		bad("no memory limit")
	} else if soft := cfg.MemoryLimit.N; soft <= 0 || float64(soft) > 0.9*float64(lim.Value()) {
		bad("memory-limit %s is not within 90%% of the container's memory limit %s", cfg.MemoryLimit.String(), lim.String())
	}

	// Non-root, read-only root file system, no privilege, no host resources.
	psc, csc := pod.SecurityContext, c.SecurityContext
	nonRoot := (csc != nil && csc.RunAsNonRoot != nil && *csc.RunAsNonRoot) || (psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot && (csc == nil || csc.RunAsNonRoot == nil))
	if !nonRoot {
		bad("the pod is not non-root: runAsNonRoot is unset or false")
	}
	if (psc != nil && psc.RunAsUser != nil && *psc.RunAsUser == 0) || (csc != nil && csc.RunAsUser != nil && *csc.RunAsUser == 0) {
		bad("runAsUser 0")
	}
	switch {
	case csc == nil:
		bad("no container securityContext")
	default:
		if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
			bad("the root file system is not read-only")
		}
		if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation || (csc.Privileged != nil && *csc.Privileged) {
			bad("privilege escalation is allowed")
		}
		if csc.Capabilities == nil || len(csc.Capabilities.Drop) != 1 || csc.Capabilities.Drop[0] != "ALL" || len(csc.Capabilities.Add) > 0 {
			bad("capabilities are not all dropped")
		}
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		bad("the pod shares a host namespace")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		bad("the pod mounts a service account token it does not need")
	}
	for _, vol := range pod.Volumes {
		if vol.HostPath != nil {
			bad("volume %s is a hostPath", vol.Name)
		}
	}

	// The data directory is an emptyDir (a cache rebuilt from Kafka); every file minipipe is given comes from a
	// Secret (or the ConfigMap, for the config file).
	if _, vol := r.mountOf(cfg.DataDir); vol == nil || vol.EmptyDir == nil {
		bad("data-dir %s is not an emptyDir", cfg.DataDir)
	}
	for flag, path := range map[string]string{"auth-file": cfg.AuthFile, "tls-cert": cfg.TLSCert, "tls-key": cfg.TLSKey,
		"kafka-tls-ca": cfg.KafkaTLSCA, "kafka-tls-cert": cfg.KafkaTLSCert, "kafka-tls-key": cfg.KafkaTLSKey,
		"kafka-sasl-password-file": cfg.KafkaSASLPasswordFile} {
		if path == "" {
			continue
		}
		if _, vol := r.mountOf(path); vol == nil || vol.Secret == nil {
			bad("--%s %s is not a file from a Secret", flag, path)
		}
	}

	// A stop serves out the shutdown delay (endpoints removed meanwhile), then commits the open files: the grace
	// period covers both and a commit.
	if cfg.ShutdownDelay <= 0 {
		bad("no shutdown-delay: a stopping pod refuses requests before the Services stop sending them")
	}
	need := cfg.ShutdownDelay + cfg.RotateInterval + 30*time.Second
	if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < need {
		bad("termination grace period %v is shorter than shutdown-delay %s + rotate-interval %s + 30s", g, cfg.ShutdownDelay, cfg.RotateInterval)
	}

	// Disruption budget, autoscalers and the ServiceMonitor point at this Deployment and its pods.
	for _, pdb := range r.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(r.deploy.Spec.Template.Labels)) {
			bad("PodDisruptionBudget %s does not select the pods", pdb.Name)
		}
	}
	for _, h := range r.hpas {
		if h.Spec.ScaleTargetRef.Name != r.deploy.Name || h.Spec.ScaleTargetRef.Kind != "Deployment" {
			bad("HorizontalPodAutoscaler %s scales %s", h.Name, h.Spec.ScaleTargetRef.Name)
		}
	}
	names := topology.Names{Pipeline: cfg.PipelineName}
	for _, cr := range r.custom {
		if cr.kind != "ScaledObject" {
			continue
		}
		spec, _ := cr.obj["spec"].(map[string]any)
		if ref, _ := spec["scaleTargetRef"].(map[string]any); ref["name"] != r.deploy.Name {
			bad("ScaledObject scales %v", ref["name"])
		}
		triggers, _ := spec["triggers"].([]any)
		commit := false
		for _, tr := range triggers {
			md, _ := tr.(map[string]any)["metadata"].(map[string]any)
			topic, _ := md["topic"].(string)
			group := md["consumerGroup"]
			switch {
			case topic == names.RowsTopic():
				commit = group == names.CommitGroup()
				if !commit {
					bad("the lag trigger on %s names group %v, minipipe's is %s", topic, group, names.CommitGroup())
				}
			case group != names.IngestGroup(topic, 1):
				bad("the lag trigger on %s names group %v, minipipe's is %s", topic, group, names.IngestGroup(topic, 1))
			}
			bs, _ := md["bootstrapServers"].(string)
			kb := strings.Split(bs, ",")
			if len(kb) != len(cfg.Brokers) {
				bad("a lag trigger asks brokers %q, minipipe uses %v", bs, cfg.Brokers)
			}
			for i := range min(len(kb), len(cfg.Brokers)) {
				host, port, _ := strings.Cut(kb[i], ":")
				mh, mp, _ := strings.Cut(cfg.Brokers[i], ":")
				if port != mp || !strings.HasPrefix(host, mh) || !strings.Contains(host, ".") {
					bad("a lag trigger asks broker %s for minipipe's %s: KEDA's operator needs a name it resolves in its own namespace", kb[i], cfg.Brokers[i])
				}
			}
		}
		if !commit {
			bad("the ScaledObject does not watch the commit stage's lag")
		}
		if r.deploy.Spec.Replicas != nil {
			bad("the Deployment sets replicas while a ScaledObject scales it")
		}
	}
	for _, sm := range r.serviceMonitor {
		found := false
		for _, svc := range r.services {
			if labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(svc.Labels)) {
				for _, p := range svc.Spec.Ports {
					for _, e := range sm.Spec.Endpoints {
						if e.Port == p.Name && p.TargetPort.String() == "http" && e.Path == "/metrics" {
							found = true
						}
					}
				}
			}
		}
		if !found {
			bad("ServiceMonitor %s scrapes no /metrics of the http listener", sm.Name)
		}
	}
	return v
}

// loadAsPod reads the config file the way minipipe in the pod reads it, with the files the pod's Secrets hold
// present: each Secret mount is mirrored in a temporary directory, with placeholder files where the config
// names one; the paths in the returned config are the pod's.
func (r *rendered) loadAsPod(t *testing.T, text string) (topology.Config, error) {
	t.Helper()
	mirror := t.TempDir()
	for _, m := range r.container().VolumeMounts {
		if _, vol := r.mountOf(m.MountPath + "/x"); vol != nil && vol.Secret != nil {
			text = strings.ReplaceAll(text, " "+m.MountPath+"/", " "+mirror+m.MountPath+"/")
		}
	}
	certs := testkit.NewCerts(t, "")
	for _, path := range regexp.MustCompile(regexp.QuoteMeta(mirror)+`\S+`).FindAllString(text, -1) {
		content := []byte("placeholder\n")
		for suffix, from := range map[string]string{"ca.crt": certs.CA, "tls.crt": certs.Cert, "tls.key": certs.Key} {
			if strings.HasSuffix(path, "/"+suffix) {
				b, err := os.ReadFile(from)
				if err != nil {
					t.Fatal(err)
				}
				content = b
			}
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "minipipe.yaml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := topology.LoadConfigFile(file)
	for _, p := range []*string{&cfg.AuthFile, &cfg.TLSCert, &cfg.TLSKey, &cfg.KafkaTLSCA, &cfg.KafkaTLSCert, &cfg.KafkaTLSKey, &cfg.KafkaSASLPasswordFile} {
		*p = strings.TrimPrefix(*p, mirror)
	}
	return cfg, err
}

func (r *rendered) configMap(name string) map[string]string {
	for _, cm := range r.configMaps {
		if cm.Name == name {
			return cm.Data
		}
	}
	return nil
}

// mountOf returns the container's mount holding path, and its volume.
func (r *rendered) mountOf(path string) (*corev1.VolumeMount, *corev1.Volume) {
	c := r.container()
	var best *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if path == m.MountPath || strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") {
			if best == nil || len(m.MountPath) > len(best.MountPath) {
				best = &c.VolumeMounts[i]
			}
		}
	}
	if best == nil {
		return nil, nil
	}
	for i, v := range r.deploy.Spec.Template.Spec.Volumes {
		if v.Name == best.Name {
			return best, &r.deploy.Spec.Template.Spec.Volumes[i]
		}
	}
	return best, nil
}
