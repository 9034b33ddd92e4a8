package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/config"
)

const dockerfile = "../../Dockerfile"

// instruction is one Dockerfile instruction: its keyword and the rest of
// its (continued) line.
type instruction struct{ cmd, args string }

// dockerStages reads a Dockerfile into its stages, each a list of
// instructions beginning with its FROM; comments and line continuations
// are handled, parser directives and heredocs are not needed here.
func dockerStages(t *testing.T, path string) [][]instruction {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages [][]instruction
	var line string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") || (l == "" && line == "") {
			continue
		}
		if rest, ok := strings.CutSuffix(l, "\\"); ok {
			line += rest + " "
			continue
		}
		line += l
		cmd, args, _ := strings.Cut(line, " ")
		line = ""
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("%s: %s before the first FROM", path, in.cmd)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	return stages
}

// execForm parses an instruction's exec form (a JSON array of strings);
// nil for the shell form.
func execForm(args string) []string {
	var v []string
	if json.Unmarshal([]byte(args), &v) != nil {
		return nil
	}
	return v
}

// TestDockerfile: the image is built by a golang image of go.mod's Go
// version into a static, trimmed binary stamped with its version, and runs
// on distroless (or scratch) as a user that is not root, with no shell:
// the final stage runs nothing in a shell, and ENTRYPOINT and CMD are in
// exec form.
func TestDockerfile(t *testing.T) {
	stages := dockerStages(t, dockerfile)
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(stages))
	}
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if goVer == nil {
		t.Fatal("go.mod names no go version")
	}
	build := stages[0]
	if want := "golang:" + string(goVer[1]) + "-"; !strings.HasPrefix(build[0].args, want) {
		t.Errorf("the build stage is FROM %s; want an image tagged %s... (go.mod says go %s)", build[0].args, want, goVer[1])
	}
	var buildCmd string
	for _, in := range build {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			buildCmd = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=${VERSION}", "./cmd/mogate"} {
		if !strings.Contains(buildCmd, want) {
			t.Errorf("the go build step lacks %q: %q", want, buildCmd)
		}
	}

	final := stages[len(stages)-1]
	base := final[0].args
	if !strings.HasPrefix(base, "gcr.io/distroless/static") && base != "scratch" {
		t.Errorf("the final stage is FROM %s: want distroless static or scratch (no shell)", base)
	}
	var user string
	var entry, cmd []string
	expose := false
	for _, in := range final {
		switch in.cmd {
		case "USER":
			user = in.args
		case "RUN", "SHELL", "HEALTHCHECK", "ONBUILD":
			if in.cmd == "RUN" && execForm(in.args) != nil {
				continue
			}
			t.Errorf("the final stage has %s %s: it has no shell to run it", in.cmd, in.args)
		case "ENTRYPOINT":
			if entry = execForm(in.args); entry == nil {
				t.Errorf("ENTRYPOINT %s is in shell form; want exec form", in.args)
			}
		case "CMD":
			if cmd = execForm(in.args); cmd == nil {
				t.Errorf("CMD %s is in shell form; want exec form", in.args)
			}
		case "EXPOSE":
			expose = slices.Contains(strings.Fields(in.args), "8080")
		}
	}
	name, _, _ := strings.Cut(user, ":")
	if name == "" || name == "root" || name == "0" {
		t.Errorf("the final stage runs as %q; want a non-root USER", user)
	}
	if strings.Join(entry, " ") != "/mogate" || strings.Join(cmd, " ") != "serve --config /etc/mogate/mogate.yaml" {
		t.Errorf("ENTRYPOINT %q CMD %q; want [/mogate] [serve --config /etc/mogate/mogate.yaml]", entry, cmd)
	}
	if !expose {
		t.Error("the final stage does not EXPOSE 8080")
	}

	ignore, err := os.ReadFile("../../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", "bin/", "mogate-data/"} {
		if !slices.Contains(strings.Fields(string(ignore)), want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
}

// imageConfig is the configuration the image smoke test mounts: a single
// instance on store: memory, listening on every interface of the container.
const imageConfig = `listen: 0.0.0.0:8080
public_url: http://127.0.0.1:8080
data_dir: /home/nonroot/data
api_keys: [{name: smoke, key: smoke-test-api-key-0001}]
providers: [{name: twilio, type: twilio, auth_token: smoke-test-twilio-token}]
numbers: [{number: "+14155550100", provider: twilio, countries: ["*"]}]
`

// containerEngine returns docker or podman where one is installed and its
// daemon (or service) answers, or says what is missing.
func containerEngine() (string, string) {
	var missing []string
	for _, name := range []string{"docker", "podman"} {
		path, err := exec.LookPath(name)
		if err != nil {
			missing = append(missing, name+" not on PATH")
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, path, "info").CombinedOutput()
		cancel()
		if err == nil {
			return path, ""
		}
		last := strings.TrimSpace(string(out))
		if i := strings.LastIndex(last, "\n"); i >= 0 {
			last = last[i+1:]
		}
		missing = append(missing, fmt.Sprintf("`%s info` failed (%v: %s)", name, err, last))
	}
	return "", strings.Join(missing, "; ")
}

// TestContainerImage builds the image with a container engine and runs it:
// `mogate version` prints the version given to the build, the image has no
// shell, its user is not root, and `serve` with a mounted configuration
// answers /readyz and creates a verification. Skipped where no container
// engine runs (the message says which and why).
func TestContainerImage(t *testing.T) {
	if _, err := config.Parse([]byte(imageConfig), func(string) (string, bool) { return "", false }); err != nil {
		t.Fatalf("the smoke test's configuration: %v", err)
	}
	engine, missing := containerEngine()
	if engine == "" {
		t.Skip("no container engine to build the image with: " + missing)
	}
	run := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, engine, args...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	tag := fmt.Sprintf("mogate-smoke:%d", time.Now().UnixNano())
	const version = "v0.0.0-smoke"
	if out, err := run(15*time.Minute, "build", "--build-arg", "VERSION="+version, "-t", tag, "../.."); err != nil {
		t.Fatalf("%s build: %v\n%s", engine, err, out)
	}
	t.Cleanup(func() { _, _ = run(time.Minute, "rmi", "-f", tag) })

	if out, err := run(time.Minute, "run", "--rm", tag, "version"); err != nil || !strings.Contains(out, version) {
		t.Errorf("mogate version in the image: %v %q, want %s", err, out, version)
	}
	if out, err := run(time.Minute, "image", "inspect", "-f", "{{.Config.User}}", tag); err != nil || out == "" || out == "root" || strings.HasPrefix(out, "0") {
		t.Errorf("the image's user: %v %q, want a non-root user", err, out)
	}
	if out, err := run(time.Minute, "run", "--rm", "--entrypoint", "/bin/sh", tag, "-c", "true"); err == nil {
		t.Errorf("the image has a shell: /bin/sh ran (%q)", out)
	}

	dir := t.TempDir()
	cfg := filepath.Join(dir, "mogate.yaml")
	if err := os.WriteFile(cfg, []byte(imageConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfg, 0o644); err != nil { // past the umask: the image's user reads it
		t.Fatal(err)
	}
	id, err := run(time.Minute, "run", "-d", "-p", "127.0.0.1::8080", "-v", cfg+":/etc/mogate/mogate.yaml:ro", tag)
	if err != nil {
		t.Fatalf("%s run serve: %v\n%s", engine, err, id)
	}
	t.Cleanup(func() { _, _ = run(time.Minute, "rm", "-f", id) })
	hostPort, err := run(time.Minute, "port", id, "8080/tcp")
	if err != nil {
		t.Fatalf("%s port: %v %s", engine, err, hostPort)
	}
	hostPort = strings.Split(hostPort, "\n")[0]
	base := "http://" + strings.Replace(hostPort, "0.0.0.0", "127.0.0.1", 1)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			logs, _ := run(time.Minute, "logs", id)
			t.Fatalf("the container never answered /readyz 200 at %s (%v)\n%s", base, err, logs)
		}
		time.Sleep(200 * time.Millisecond) // polling a process in another namespace: no hook to wait on
	}
	if code, body := call(t, "POST", base+"/v1/verifications", "smoke-test-api-key-0001", `{"number":"+14155550123"}`); code != http.StatusCreated {
		t.Errorf("create in the container: %d %s", code, body)
	}
	if out, err := run(time.Minute, "stop", "-t", "60", id); err != nil {
		t.Errorf("%s stop: %v %s", engine, err, out)
	}
	if out, err := run(time.Minute, "inspect", "-f", "{{.State.ExitCode}}", id); err != nil || out != "0" {
		t.Errorf("mogate in the container exited %q (%v) after SIGTERM; want 0", out, err)
	}
}
