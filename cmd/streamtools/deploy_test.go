package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v3"
	"gopkg.in/yaml.v3"
)

// There is no container engine here: these tests read docker-compose.yml and
// deploy/k8s the way the engines would, and check that every command and
// every STREAMTOOLS_* variable they use exists in this binary.

// findCommand resolves args (e.g. ["dashboard", "users", "create"]) to the
// deepest command they name; nil when the first is unknown.
func findCommand(root *cli.Command, args []string) *cli.Command {
	cur := root
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			break
		}
		next := cur.Command(a)
		if next == nil {
			break
		}
		cur = next
	}
	if cur == root {
		return nil
	}
	return cur
}

// checkEnv reports every STREAMTOOLS_* variable that no flag of cmd reads.
func checkEnv(t *testing.T, where string, cmd *cli.Command, env map[string]string) {
	t.Helper()
	known := map[string]bool{}
	for _, f := range cmd.Flags {
		if e, ok := f.(interface{ GetEnvVars() []string }); ok {
			for _, v := range e.GetEnvVars() {
				known[v] = true
			}
		}
	}
	for k := range env {
		if strings.HasPrefix(k, "STREAMTOOLS_") && !known[k] {
			t.Errorf("%s: %s is not read by `streamtools %s`", where, k, cmd.Name)
		}
	}
}

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		DependsOn   map[string]any    `yaml:"depends_on"`
	} `yaml:"services"`
}

func TestComposeFileMatchesTheBinary(t *testing.T) {
	root := newApp()
	b, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(b, &cf); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	seen := map[string]bool{}
	for name, svc := range cf.Services {
		for dep := range svc.DependsOn {
			if _, ok := cf.Services[dep]; !ok {
				t.Errorf("service %s depends on undefined service %s", name, dep)
			}
		}
		if svc.Image != "streamtools:local" {
			continue
		}
		if len(svc.Command) == 1 && svc.Command[0] == "--help" {
			continue
		}
		cmd := findCommand(root, svc.Command)
		if cmd == nil {
			t.Errorf("service %s runs `streamtools %s`, which does not exist", name, strings.Join(svc.Command, " "))
			continue
		}
		seen[cmd.Name] = true
		checkEnv(t, "service "+name, cmd, svc.Environment)
		// A published port must be the one the component listens on.
		for k, v := range svc.Environment {
			if !strings.HasSuffix(k, "_LISTEN") {
				continue
			}
			_, port, err := net.SplitHostPort(v)
			if err != nil {
				t.Errorf("service %s: %s=%q is not host:port", name, k, v)
				continue
			}
			if !strings.HasPrefix(v, "0.0.0.0:") {
				t.Errorf("service %s: %s=%q must listen on 0.0.0.0 inside a container", name, k, v)
			}
			published := false
			for _, p := range svc.Ports {
				if strings.HasSuffix(p, ":"+port) {
					published = true
				}
			}
			if len(svc.Ports) > 0 && !published && !strings.Contains(k, "METRICS") {
				t.Errorf("service %s listens on %s but publishes %v", name, port, svc.Ports)
			}
		}
	}
	for _, want := range []string{"ingest", "process", "sink", "widgetd", "dashboard", "migrate"} {
		if !seen[want] {
			t.Errorf("docker-compose.yml runs no %s service", want)
		}
	}
	for _, want := range []string{"kafka", "postgres"} {
		if _, ok := cf.Services[want]; !ok {
			t.Errorf("docker-compose.yml has no %s service", want)
		}
	}
}

type k8sDoc struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Template struct {
			Spec struct {
				Containers []struct {
					Name    string   `yaml:"name"`
					Args    []string `yaml:"args"`
					EnvFrom []struct {
						ConfigMapRef *struct{ Name string } `yaml:"configMapRef"`
						SecretRef    *struct{ Name string } `yaml:"secretRef"`
					} `yaml:"envFrom"`
					Env []struct {
						Name  string `yaml:"name"`
						Value string `yaml:"value"`
					} `yaml:"env"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

func TestKubernetesManifestsMatchTheBinary(t *testing.T) {
	root := newApp()
	files, err := filepath.Glob(filepath.Join("..", "..", "deploy", "k8s", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/k8s (%v)", err)
	}
	var docs []k8sDoc
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var d k8sDoc
			if err := dec.Decode(&d); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s does not parse: %v", f, err)
			}
			docs = append(docs, d)
		}
	}
	sources := map[string]map[string]string{} // ConfigMap/Secret name -> its keys
	for _, d := range docs {
		switch d.Kind {
		case "ConfigMap":
			sources[d.Metadata.Name] = d.Data
		case "Secret":
			sources[d.Metadata.Name] = d.StringData
		}
	}
	seen := map[string]bool{}
	for _, d := range docs {
		for _, c := range d.Spec.Template.Spec.Containers {
			cmd := findCommand(root, c.Args)
			if cmd == nil {
				t.Errorf("%s %s runs `streamtools %v`, which does not exist", d.Kind, d.Metadata.Name, c.Args)
				continue
			}
			seen[cmd.Name] = true
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			for _, ef := range c.EnvFrom {
				var name string
				if ef.ConfigMapRef != nil {
					name = ef.ConfigMapRef.Name
				} else if ef.SecretRef != nil {
					name = ef.SecretRef.Name
				}
				src, ok := sources[name]
				if !ok {
					t.Errorf("%s %s reads undefined ConfigMap/Secret %q", d.Kind, d.Metadata.Name, name)
				}
				// Shared sources may hold variables other commands read;
				// only the brokers and log settings must be universal.
				for k, v := range src {
					if k == "STREAMTOOLS_DATABASE_URL" || strings.HasPrefix(k, "STREAMTOOLS_BROKERS") || strings.HasPrefix(k, "STREAMTOOLS_LOG") {
						if k == "STREAMTOOLS_BROKERS" && cmd.Name == "dashboard" || k == "STREAMTOOLS_BROKERS" && cmd.Name == "migrate" {
							continue // read by neither; harmless in a shared ConfigMap
						}
						env[k] = v
					}
				}
			}
			checkEnv(t, d.Kind+" "+d.Metadata.Name, cmd, env)
		}
	}
	for _, want := range []string{"ingest", "process", "sink", "widgetd", "dashboard", "migrate"} {
		if !seen[want] {
			t.Errorf("deploy/k8s runs no %s", want)
		}
	}
}
