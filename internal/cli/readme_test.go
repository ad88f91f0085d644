package cli_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// readmeCommand finds a command line the README shows: `parley <command>` at the start of a
// line (optionally after "$ ") or in backticks, with an optional subcommand or
// `sub|sub|...` alternatives.
var readmeCommand = regexp.MustCompile("(?m)(^ *(\\$ )?|`)parley [a-z][a-z-]*( [a-z][a-z|-]*)?")

// readmeCommands returns every command line the README documents, as argument lists
// without the program name: ["channel", "set"], ["serve"], ...
func readmeCommands(t *testing.T) [][]string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var out [][]string
	for _, m := range readmeCommand.FindAllString(string(readme), -1) {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(m), "$ ")), "`"))
		// f[0] is "parley".
		cmd := f[1]
		subs := []string{""}
		if len(f) > 2 && !strings.HasPrefix(f[2], "-") {
			subs = strings.Split(f[2], "|")
		}
		for _, s := range subs {
			args := []string{cmd}
			if s != "" {
				args = append(args, s)
			}
			if k := strings.Join(args, " "); !seen[k] {
				seen[k] = true
				out = append(out, args)
			}
		}
	}
	return out
}

// TestREADMECommandsExist runs every command and subcommand the README documents with -h:
// each must exist and answer its usage with exit 0.
func TestREADMECommandsExist(t *testing.T) {
	cmds := readmeCommands(t)
	documented := map[string]bool{}
	for _, args := range cmds {
		documented[strings.Join(args, " ")] = true
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			code, out, errOut := runCode(append(args, "-h")...)
			if code != 0 {
				t.Fatalf("parley %s -h: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
			}
		})
	}
	// The extraction itself must keep working: these are in the README today, so a
	// pattern that stopped matching would otherwise pass with nothing checked.
	for _, want := range []string{"serve", "migrate", "bot create", "key revoke", "flow validate", "account set",
		"channel set", "channel show", "httpstep reset-alert"} {
		if !documented[want] {
			t.Errorf("found no `parley %s` in the README; found %v", want, cmds)
		}
	}
}

// TestCommandsAreDocumented is the converse: every command `parley -h` lists appears in
// the README.
func TestCommandsAreDocumented(t *testing.T) {
	documented := map[string]bool{}
	for _, args := range readmeCommands(t) {
		documented[args[0]] = true
	}
	code, _, usage := runCode("-h")
	if code != 0 {
		t.Fatalf("parley -h: exit %d: %s", code, usage)
	}
	_, list, ok := strings.Cut(usage, "commands:\n")
	if !ok {
		t.Fatalf("parley -h lists no commands:\n%s", usage)
	}
	n := 0
	for _, line := range strings.Split(list, "\n") {
		if !strings.HasPrefix(line, "  ") {
			if n > 0 {
				break
			}
			continue
		}
		name := strings.Fields(line)[0]
		n++
		if !documented[name] {
			t.Errorf("parley %s is not shown in the README", name)
		}
	}
	if n == 0 {
		t.Fatalf("parley -h lists no commands:\n%s", usage)
	}
}
