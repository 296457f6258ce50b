//go:build !advertiser

package main

import (
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"
)

// The deployment artifacts under deploy/, checked offline against the
// binary they run: .ci/deploy.sh builds and runs the image where podman
// works; this test holds wherever go test runs.

const deployDir = "../../deploy"

// serveEnv maps each environment variable of overlap serve to its flag.
func serveEnv(t *testing.T) map[string]cli.Flag {
	t.Helper()
	m := map[string]cli.Flag{}
	for _, f := range serveCommand().Flags {
		if ev, ok := f.(interface{ GetEnvVars() []string }); ok {
			for _, e := range ev.GetEnvVars() {
				m[e] = f
			}
		}
	}
	if len(m) == 0 {
		t.Fatal("overlap serve has no environment variables")
	}
	return m
}

// checkServeEnv checks that env sets only variables of overlap serve, each
// to a value its flag accepts, and returns them.
func checkServeEnv(t *testing.T, where string, env map[string]string) {
	t.Helper()
	flags := serveEnv(t)
	for k, v := range env {
		f, ok := flags[k]
		if !ok {
			t.Errorf("%s: %s is not an environment variable of overlap serve", where, k)
			continue
		}
		var err error
		switch f.(type) {
		case *cli.IntFlag, *cli.Int64Flag:
			_, err = strconv.ParseInt(v, 10, 64)
		case *cli.DurationFlag:
			_, err = time.ParseDuration(v)
		}
		if err != nil {
			t.Errorf("%s: %s=%q: %v", where, k, v, err)
		}
	}
}

// portOf is the port of a listen address such as ":8443".
func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return n
}

// dockerfile is what the test reads of deploy/Dockerfile.
type dockerfile struct {
	stages     []string // FROM lines
	user       string
	expose     []int
	entrypoint string
	build      []string // the go build command's arguments
	env        map[string]string
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var d dockerfile
	d.env = map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "FROM": // what follows is of the last stage, but the build
			d.stages = append(d.stages, f[1])
			d.env = map[string]string{}
		case "USER":
			d.user = f[1]
		case "EXPOSE":
			for _, p := range f[1:] {
				n, _ := strconv.Atoi(p)
				d.expose = append(d.expose, n)
			}
		case "ENTRYPOINT":
			d.entrypoint = strings.Trim(strings.Join(f[1:], ""), `[]"`)
		case "ENV":
			for _, kv := range f[1:] {
				k, v, _ := strings.Cut(kv, "=")
				d.env[k] = v
			}
		case "RUN":
			if len(f) > 2 && f[1] == "go" && f[2] == "build" {
				d.build = f[3:]
			}
		}
	}
	return d
}

// TestDockerfile checks the image's definition: a build stage, then an
// empty base with the binary run as a non-root user, ports and
// environment those of overlap serve; and runs the Dockerfile's go build
// for real: the binary is static and runs.
func TestDockerfile(t *testing.T) {
	d := readDockerfile(t)
	if len(d.stages) != 2 || d.stages[1] != "scratch" {
		t.Errorf("stages %v: want a build stage, then scratch", d.stages)
	}
	if d.user != "65532:65532" {
		t.Errorf("USER %q, want 65532:65532 (non-root)", d.user)
	}
	checkServeEnv(t, "Dockerfile", d.env)
	want := []int{portOf(t, d.env["OVERLAP_ADDR"]), portOf(t, d.env["OVERLAP_ADMIN_ADDR"])}
	if !slices.Equal(d.expose, want) {
		t.Errorf("EXPOSE %v; the image's OVERLAP_ADDR and OVERLAP_ADMIN_ADDR listen on %v", d.expose, want)
	}
	if d.entrypoint != "/usr/local/bin/overlap" {
		t.Errorf("ENTRYPOINT %q", d.entrypoint)
	}
	i := slices.Index(d.build, "-o")
	if i < 0 || i+2 >= len(d.build) || d.build[i+1] != "/out/overlap" || d.build[len(d.build)-1] != "./cmd/overlap" {
		t.Fatalf("go build %v: want -o /out/overlap ... ./cmd/overlap", d.build)
	}
	if testing.Short() {
		t.Skip("the build itself")
	}
	args := slices.Clone(d.build)
	out := filepath.Join(t.TempDir(), "overlap")
	args[i+1] = out
	for j, a := range args { // the shell's quotes: -ldflags="-s -w"
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(v, `"`) && !strings.HasSuffix(v, `"`) && j+1 < len(args) {
			args[j] = k + "=" + strings.Trim(v+" "+args[j+1], `"`)
			args = slices.Delete(args, j+1, j+2)
			break
		}
	}
	cmd := exec.Command("go", append([]string{"build"}, args...)...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", args, err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has an interpreter: not static, it cannot run on scratch")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs %v", libs)
	}
	if b, err := exec.Command(out, "version").CombinedOutput(); err != nil || !bytes.Contains(b, []byte("protocol v1")) {
		t.Errorf("overlap version: %v\n%s", err, b)
	}
}

// Kubernetes objects, as far as the test reads them.
type (
	k8sObject struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name   string            `yaml:"name"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec       yaml.Node         `yaml:"spec"`
		Type       string            `yaml:"type"`
		StringData map[string]string `yaml:"stringData"`
	}
	k8sDeployment struct {
		Replicas int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				SecurityContext               struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
					RunAsUser    int  `yaml:"runAsUser"`
					RunAsGroup   int  `yaml:"runAsGroup"`
				} `yaml:"securityContext"`
				Containers []struct {
					Args  []string `yaml:"args"`
					Ports []struct {
						Name          string `yaml:"name"`
						ContainerPort int    `yaml:"containerPort"`
					} `yaml:"ports"`
					Env []struct {
						Name      string `yaml:"name"`
						Value     string `yaml:"value"`
						ValueFrom struct {
							SecretKeyRef struct {
								Name string `yaml:"name"`
								Key  string `yaml:"key"`
							} `yaml:"secretKeyRef"`
						} `yaml:"valueFrom"`
					} `yaml:"env"`
					VolumeMounts []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
					ReadinessProbe k8sProbe `yaml:"readinessProbe"`
					LivenessProbe  k8sProbe `yaml:"livenessProbe"`
					Lifecycle      struct {
						PreStop struct {
							Sleep struct {
								Seconds int `yaml:"seconds"`
							} `yaml:"sleep"`
						} `yaml:"preStop"`
					} `yaml:"lifecycle"`
					Resources struct {
						Requests map[string]string `yaml:"requests"`
						Limits   map[string]string `yaml:"limits"`
					} `yaml:"resources"`
					SecurityContext struct {
						AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
						ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
						Capabilities             struct {
							Drop []string `yaml:"drop"`
						} `yaml:"capabilities"`
					} `yaml:"securityContext"`
				} `yaml:"containers"`
				Volumes []struct {
					Name   string `yaml:"name"`
					Secret struct {
						SecretName string `yaml:"secretName"`
					} `yaml:"secret"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	}
	k8sProbe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
	}
	k8sSelected struct {
		Selector map[string]any `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	}
)

// readK8s reads every object of the YAML files of deploy/k8s, by kind.
func readK8s(t *testing.T) (map[string][]k8sObject, []string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(deployDir, "k8s", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	objs := map[string][]k8sObject{}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o k8sObject
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			objs[o.Kind] = append(objs[o.Kind], o)
		}
	}
	return objs, files
}

func decodeSpec[T any](t *testing.T, o k8sObject) T {
	t.Helper()
	var v T
	if err := o.Spec.Decode(&v); err != nil {
		t.Fatalf("%s %s: %v", o.Kind, o.Metadata.Name, err)
	}
	return v
}

func parseDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestKubernetesManifests checks deploy/k8s against the image and the
// binary: a non-root pod, readiness on /readyz of the admin port, ports
// matching the addresses set, every variable one of overlap serve, the
// secrets it reads defined with the keys it reads, a grace period longer
// than the drain, resources set, and Services and the disruption budget
// selecting the pods.
func TestKubernetesManifests(t *testing.T) {
	objs, files := readK8s(t)
	d := readDockerfile(t)
	if len(objs["Deployment"]) != 1 {
		t.Fatalf("%d Deployments, want 1", len(objs["Deployment"]))
	}
	dep := decodeSpec[k8sDeployment](t, objs["Deployment"][0])
	pod := dep.Template.Spec
	if dep.Replicas < 2 {
		t.Errorf("%d replicas", dep.Replicas)
	}
	for k, v := range dep.Selector.MatchLabels {
		if dep.Template.Metadata.Labels[k] != v {
			t.Errorf("the selector %s=%s does not select the pods", k, v)
		}
	}
	if sc := pod.SecurityContext; !sc.RunAsNonRoot || strconv.Itoa(sc.RunAsUser)+":"+strconv.Itoa(sc.RunAsGroup) != d.user {
		t.Errorf("pod security context %+v; the image runs as %s", sc, d.user)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	if !slices.Equal(c.Args, []string{"serve"}) {
		t.Errorf("args %v", c.Args)
	}
	env := map[string]string{}
	secretKeys := map[string][]string{} // secret → keys read
	for _, e := range c.Env {
		if r := e.ValueFrom.SecretKeyRef; r.Name != "" {
			secretKeys[r.Name] = append(secretKeys[r.Name], r.Key)
			env[e.Name] = "postgres://from-a-secret"
			continue
		}
		env[e.Name] = e.Value
	}
	checkServeEnv(t, "deployment.yaml", env)
	if !strings.HasPrefix(env["OVERLAP_DB"], "postgres://") {
		t.Error("OVERLAP_DB is not read from a Secret: replicas need PostgreSQL")
	}
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["match"] != portOf(t, env["OVERLAP_ADDR"]) || ports["admin"] != portOf(t, env["OVERLAP_ADMIN_ADDR"]) {
		t.Errorf("container ports %v; OVERLAP_ADDR %q, OVERLAP_ADMIN_ADDR %q", ports, env["OVERLAP_ADDR"], env["OVERLAP_ADMIN_ADDR"])
	}
	if p := c.ReadinessProbe.HTTPGet; p.Path != "/readyz" || p.Port != "admin" {
		t.Errorf("readiness probe %+v, want /readyz on the admin port", p)
	}
	if p := c.LivenessProbe.HTTPGet; p.Path != "/healthz" || p.Port != "admin" {
		t.Errorf("liveness probe %+v, want /healthz on the admin port", p)
	}
	drain := parseDuration(t, env["OVERLAP_SHUTDOWN_TIMEOUT"]) + time.Duration(c.Lifecycle.PreStop.Sleep.Seconds)*time.Second
	if grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; grace <= drain {
		t.Errorf("terminationGracePeriodSeconds %v is not longer than the preStop sleep and the shutdown timeout (%v)", grace, drain)
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}
	if workers := env["OVERLAP_WORKERS"]; workers != c.Resources.Requests["cpu"] {
		t.Errorf("OVERLAP_WORKERS %q against a CPU request of %q", workers, c.Resources.Requests["cpu"])
	}
	if sc := c.SecurityContext; sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !sc.ReadOnlyRootFilesystem || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("container security context %+v", sc)
	}
	// The TLS files are keys of the Secret mounted where OVERLAP_CERT and
	// OVERLAP_KEY point.
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	for _, v := range pod.Volumes {
		if v.Secret.SecretName == "" {
			continue
		}
		for _, f := range []string{env["OVERLAP_CERT"], env["OVERLAP_KEY"]} {
			if filepath.Dir(f) == mounts[v.Name] {
				secretKeys[v.Secret.SecretName] = append(secretKeys[v.Secret.SecretName], filepath.Base(f))
			}
		}
	}
	secrets := map[string]k8sObject{}
	for _, s := range objs["Secret"] {
		secrets[s.Metadata.Name] = s
	}
	if len(secretKeys) != 2 {
		t.Errorf("the pod reads secrets %v; want the TLS one and the DSN one", secretKeys)
	}
	for name, keys := range secretKeys {
		s, ok := secrets[name]
		if !ok {
			t.Errorf("secret %s is read but not in secrets.example.yaml", name)
		}
		for _, k := range keys {
			if _, ok := s.StringData[k]; !ok {
				t.Errorf("secret %s has no key %s", name, k)
			}
		}
	}
	if s := secrets["overlap-tls"]; s.Type != "kubernetes.io/tls" {
		t.Errorf("secret overlap-tls of type %q", s.Type)
	}
	// Services and the disruption budget select the pods; Service ports
	// name container ports.
	for _, kind := range []string{"Service", "PodDisruptionBudget"} {
		if len(objs[kind]) == 0 {
			t.Errorf("no %s", kind)
		}
		for _, o := range objs[kind] {
			s := decodeSpec[k8sSelected](t, o)
			sel := s.Selector
			if ml, ok := sel["matchLabels"].(map[string]any); ok {
				sel = ml
			}
			for k, v := range sel {
				if dep.Template.Metadata.Labels[k] != v {
					t.Errorf("%s %s selects %s=%v, not a label of the pods", kind, o.Metadata.Name, k, v)
				}
			}
			for _, p := range s.Ports {
				if _, ok := ports[p.TargetPort]; !ok {
					t.Errorf("%s %s targets port %q, not a container port", kind, o.Metadata.Name, p.TargetPort)
				}
			}
		}
	}
	// kustomization.yaml lists every manifest but the example secrets.
	var kust struct {
		Resources []string `yaml:"resources"`
	}
	b, err := os.ReadFile(filepath.Join(deployDir, "k8s", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &kust); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		if base != "kustomization.yaml" && base != "secrets.example.yaml" && !slices.Contains(kust.Resources, base) {
			t.Errorf("kustomization.yaml leaves out %s", base)
		}
	}
}

// composeService is what the test reads of a service of the compose file.
type composeService struct {
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	User        string            `yaml:"user"`
	EnvFile     []string          `yaml:"env_file"`
	Environment map[string]string `yaml:"environment"`
	Expose      []string          `yaml:"expose"`
	Ports       []string          `yaml:"ports"`
	ReadOnly    bool              `yaml:"read_only"`
	CapDrop     []string          `yaml:"cap_drop"`
	StopGrace   string            `yaml:"stop_grace_period"`
	Volumes     []string          `yaml:"volumes"`
	Build       struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Secrets []composeSecret `yaml:"secrets"`
}

// composeSecret is a service's secret, in the short syntax (its name) or
// the long one.
type composeSecret struct {
	Source string `yaml:"source"`
	Target string `yaml:"target"`
}

func (s *composeSecret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		s.Source, s.Target = n.Value, "/run/secrets/"+n.Value
		return nil
	}
	type plain composeSecret
	return n.Decode((*plain)(s))
}

// TestComposeFile checks deploy/compose against the image, the binary, the
// Kubernetes manifests and the load balancer's configuration: two
// replicas of the image, non-root, on the ports their variables set, the
// TLS files where the Kubernetes pods have them, and HAProxy speaking
// HTTP/2 over TLS to each, checking /readyz on the admin port.
func TestComposeFile(t *testing.T) {
	dir := filepath.Join(deployDir, "compose")
	b, err := os.ReadFile(filepath.Join(dir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf struct {
		Services map[string]composeService `yaml:"services"`
		Secrets  map[string]struct {
			File string `yaml:"file"`
		} `yaml:"secrets"`
	}
	if err := yaml.Unmarshal(b, &cf); err != nil {
		t.Fatal(err)
	}
	d := readDockerfile(t)
	objs, _ := readK8s(t)
	k8sEnv := map[string]string{}
	for _, e := range decodeSpec[k8sDeployment](t, objs["Deployment"][0]).Template.Spec.Containers[0].Env {
		k8sEnv[e.Name] = e.Value
	}
	var replicas []string
	for name, s := range cf.Services {
		if !slices.Equal(s.Command, []string{"serve"}) {
			continue
		}
		replicas = append(replicas, name)
		if s.User != d.user || !s.ReadOnly || !slices.Equal(s.CapDrop, []string{"ALL"}) {
			t.Errorf("%s: user %q, read_only %v, cap_drop %v; want the image's %s, read-only, no capabilities", name, s.User, s.ReadOnly, s.CapDrop, d.user)
		}
		if df := filepath.Join(dir, s.Build.Context, s.Build.Dockerfile); filepath.Clean(df) != filepath.Clean(filepath.Join(deployDir, "Dockerfile")) {
			t.Errorf("%s builds %s", name, df)
		}
		checkServeEnv(t, "compose.yaml "+name, s.Environment)
		if len(s.EnvFile) != 1 || !strings.HasPrefix(s.EnvFile[0], "secrets/") {
			t.Errorf("%s: env_file %v; OVERLAP_DB comes from secrets/", name, s.EnvFile)
		}
		want := []string{strconv.Itoa(portOf(t, s.Environment["OVERLAP_ADDR"])), strconv.Itoa(portOf(t, s.Environment["OVERLAP_ADMIN_ADDR"]))}
		if !slices.Equal(s.Expose, want) {
			t.Errorf("%s exposes %v; its addresses listen on %v", name, s.Expose, want)
		}
		for _, k := range []string{"OVERLAP_CERT", "OVERLAP_KEY", "OVERLAP_ADDR", "OVERLAP_ADMIN_ADDR", "OVERLAP_MAX_SESSIONS", "OVERLAP_POOL", "OVERLAP_SHUTDOWN_TIMEOUT"} {
			if s.Environment[k] != k8sEnv[k] {
				t.Errorf("%s: %s=%q, the Kubernetes pods have %q", name, k, s.Environment[k], k8sEnv[k])
			}
		}
		var targets []string
		for _, sec := range s.Secrets {
			if _, ok := cf.Secrets[sec.Source]; !ok {
				t.Errorf("%s uses undefined secret %s", name, sec.Source)
			}
			targets = append(targets, sec.Target)
		}
		for _, k := range []string{"OVERLAP_CERT", "OVERLAP_KEY"} {
			if !slices.Contains(targets, s.Environment[k]) {
				t.Errorf("%s: %s=%s is no secret's target (%v)", name, k, s.Environment[k], targets)
			}
		}
		if parseDuration(t, s.StopGrace) <= parseDuration(t, s.Environment["OVERLAP_SHUTDOWN_TIMEOUT"]) {
			t.Errorf("%s: stop_grace_period %s is not longer than the shutdown timeout", name, s.StopGrace)
		}
	}
	slices.Sort(replicas)
	if len(replicas) != 2 {
		t.Fatalf("replicas %v, want two", replicas)
	}
	for _, sec := range cf.Secrets {
		if !strings.HasPrefix(sec.File, "secrets/") {
			t.Errorf("secret file %s outside secrets/", sec.File)
		}
	}

	// HAProxy: TLS and HTTP/2 on both sides, each replica a server on its
	// match port, checked on /readyz of its admin port.
	lb, ok := cf.Services["lb"]
	if !ok {
		t.Fatal("no lb service")
	}
	var cfgFile string
	for _, v := range lb.Volumes {
		if src, dst, _ := strings.Cut(v, ":"); strings.HasPrefix(dst, "/usr/local/etc/haproxy/haproxy.cfg") {
			cfgFile = filepath.Join(dir, src)
		}
	}
	cfg, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatalf("the lb's configuration: %v", err)
	}
	lbFiles := map[string]bool{}
	for _, sec := range lb.Secrets {
		lbFiles[sec.Target] = true
	}
	replica := cf.Services[replicas[0]]
	matchPort, adminPort := portOf(t, replica.Environment["OVERLAP_ADDR"]), portOf(t, replica.Environment["OVERLAP_ADMIN_ADDR"])
	var servers []string
	for _, line := range strings.Split(string(cfg), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch {
		case f[0] == "bind":
			if !regexp.MustCompile(` ssl crt \S+ alpn h2\b`).MatchString(line) {
				t.Errorf("haproxy.cfg: %q: want TLS with HTTP/2", strings.TrimSpace(line))
			}
			if crt := f[slices.Index(f, "crt")+1]; !lbFiles[crt] {
				t.Errorf("haproxy.cfg: certificate %s is not mounted", crt)
			}
		case f[0] == "default-server":
			for _, want := range []string{"ssl", "verify required", "alpn h2", "check port " + strconv.Itoa(adminPort), "no-check-ssl"} {
				if !strings.Contains(line, want) {
					t.Errorf("haproxy.cfg: default-server lacks %q", want)
				}
			}
			if ca := f[slices.Index(f, "ca-file")+1]; !lbFiles[ca] {
				t.Errorf("haproxy.cfg: CA file %s is not mounted", ca)
			}
		case f[0] == "option" && len(f) > 1 && f[1] == "httpchk":
			if strings.Join(f[2:], " ") != "GET /readyz" {
				t.Errorf("haproxy.cfg: health check %q, want GET /readyz", line)
			}
		case f[0] == "server":
			host, port, _ := net.SplitHostPort(f[2])
			if host != f[1] || port != strconv.Itoa(matchPort) {
				t.Errorf("haproxy.cfg: server %s at %s; want the replica's name and match port %d", f[1], f[2], matchPort)
			}
			servers = append(servers, host)
		}
	}
	slices.Sort(servers)
	if !slices.Equal(servers, replicas) {
		t.Errorf("haproxy.cfg serves %v, the replicas are %v", servers, replicas)
	}
}
