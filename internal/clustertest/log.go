package clustertest

import (
	"log/slog"
	"os"
	"testing"
)

// testLogger logs to stderr when IPCLUSTER_TEST_LOG is set, else nowhere.
func testLogger(testing.TB) *slog.Logger {
	if os.Getenv("IPCLUSTER_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
