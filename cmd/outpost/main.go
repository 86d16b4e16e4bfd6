// Command outpost is a store-and-forward MQTT broker for edge gateways.
//
//	outpost run    [-c FILE]                 run the broker and bridges
//	outpost check  -c FILE                   validate a config and print what would run
//	outpost passwd                           read a password, print its bcrypt hash
//	outpost queue  -c FILE stats|peek [N]    inspect the on-disk queue (offline)
//	outpost version                          print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

const usage = `outpost: a store-and-forward MQTT broker for edge gateways

Usage:
  outpost run    [-c FILE]                 run; without -c, the embedded default config
                                           (broker on 127.0.0.1:1883, data in ./outpost-data)
  outpost check  -c FILE                   validate a config, print what would run
  outpost passwd                           read a password, print a bcrypt hash for the config
  outpost queue  -c FILE stats|peek [N]    inspect the on-disk queue (outpost must be stopped)
  outpost version                          print the version

Signals: SIGTERM/SIGINT shut down cleanly; SIGHUP reloads the config.
`

func main() {
	os.Exit(Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// errUsage is returned for bad arguments; the usage text has been printed.
var errUsage = errors.New("usage")

// Main runs the command line args and returns the exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = runCommand(ctx, args[1:], stderr)
	case "check":
		err = checkCommand(args[1:], stdout, stderr)
	case "passwd":
		err = passwdCommand(stdin, stdout, stderr)
	case "queue":
		err = queueCommand(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "outpost", versionString())
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "outpost: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintln(stderr, "outpost:", err)
		return 1
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
		return v
	}
	return "(unknown)"
}

// newFlags returns a flag set that prints errors to stderr and the usage.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	return fs
}
