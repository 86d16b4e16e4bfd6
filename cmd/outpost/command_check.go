package main

import (
	"fmt"
	"io"
)

func checkCommand(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", stderr)
	path := fs.String("c", "", "config file")
	if err := fs.Parse(args); err != nil || *path == "" || fs.NArg() != 0 {
		if err == nil {
			fmt.Fprint(stderr, "outpost check: -c FILE is required\n\n", usage)
		}
		return errUsage
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		printConfigError(stderr, err)
		return errReported
	}
	describe(stdout, cfg)
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return nil
}
