package localmesh

import (
	"os"
	"strings"
)

// ordinaryEnv are the variables of meshward's own environment an app
// inherits: what a program needs to run like one started from the shell
// (paths, locale, time zone, terminal). Everything else, MESHWARD_* above
// all (the store key, join tokens, where the admin credential is), stays
// with meshward; an app that needs more says so in its service's env:.
var ordinaryEnv = map[string]bool{
	"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "SHELL": true,
	"LANG": true, "LANGUAGE": true, "TZ": true, "TERM": true, "COLORTERM": true, "NO_COLOR": true,
	"TMPDIR": true,
}

// ordinaryPrefixes are variable families of the same kind (locale).
var ordinaryPrefixes = []string{"LC_"}

func ordinary(name string) bool {
	if ordinaryEnv[name] {
		return true
	}
	for _, p := range ordinaryPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// scrubbedEnv returns the ordinary variables of env, in order.
func scrubbedEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		name, _, ok := strings.Cut(kv, "=")
		if ok && ordinary(name) {
			out = append(out, kv)
		}
	}
	return out
}

// sidecarEnv is meshward's environment without its own variables (the
// store key above all: a sidecar has no use for it), plus the join token.
// The rest stays: sidecars read OTEL_*, GODEBUG and GOMAXPROCS.
func sidecarEnv(env []string, token string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "MESHWARD_") {
			out = append(out, kv)
		}
	}
	return append(out, "MESHWARD_TOKEN="+token)
}

// setEnv sets name=value in env, replacing an earlier value.
func setEnv(env []string, name, value string) []string {
	for i, kv := range env {
		if strings.HasPrefix(kv, name+"=") {
			env[i] = name + "=" + value
			return env
		}
	}
	return append(env, name+"="+value)
}

// environ is the supervisor's environment (a variable for tests).
var environ = os.Environ
