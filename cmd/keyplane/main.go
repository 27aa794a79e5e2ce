// Command keyplane is the API key management service. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/keyplane/keyplane/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	p := &cli.Program{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	if err := p.Run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, cli.ErrUsage) {
			os.Exit(2) // the usage was printed
		}
		fmt.Fprintln(os.Stderr, "keyplane:", err)
		os.Exit(1)
	}
}
