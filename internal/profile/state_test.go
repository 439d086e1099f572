package profile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestStateRoundTrip(t *testing.T) {
	p := testProfile(t, "default")
	if err := p.Ensure(); err != nil {
		t.Fatal(err)
	}
	path := p.StatePath()

	if _, err := ReadState(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadState of a missing file = %v; want fs.ErrNotExist", err)
	}

	states := []*State{
		{Profile: "default", ControllerPID: 10, SupervisorPID: 10, Started: time.Now().Round(0).UTC()},
		{
			Profile: "default", ClusterID: "c0ffee", ControllerPID: 11, SupervisorPID: 12,
			Started:        time.Date(2025, 3, 4, 5, 6, 7, 8, time.FixedZone("X", 3600)),
			ClientEndpoint: "tcp://127.0.0.1:40001", EngineEndpoint: "tcp://127.0.0.1:40002",
			Daemon:  true,
			Engines: []Engine{{PID: 20, Log: "/x/log/engine-0.log"}, {PID: 21}},
			Jobs: []Job{
				{ID: 1, Kind: "local", PIDs: []int{20, 21}},
				{ID: 2, Kind: "slurm", BatchID: "123456"},
			},
		},
	}
	for _, s := range states {
		if err := WriteState(path, s); err != nil {
			t.Fatal(err)
		}
		got, err := ReadState(path)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Started.Equal(s.Started) {
			t.Errorf("Started = %v, want %v", got.Started, s.Started)
		}
		got.Started = s.Started
		if !reflect.DeepEqual(got, s) {
			t.Errorf("ReadState = %+v\nwant %+v", got, s)
		}
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("state file mode %v, %v; want 0600", st.Mode(), err)
		}
	}
	if entries, _ := os.ReadDir(p.Dir); len(entries) != 3 { // cluster.json, log, security
		t.Errorf("profile holds %v; want no temporary files left", entries)
	}

	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadState(path); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadState of bad JSON = %v", err)
	}
	if err := WriteState(filepath.Join(path, "sub"), states[0]); err == nil {
		t.Error("WriteState under a file succeeded")
	}

	for range 2 {
		if err := RemoveState(path); err != nil {
			t.Errorf("RemoveState: %v", err)
		}
	}
	if _, err := ReadState(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadState after RemoveState = %v; want fs.ErrNotExist", err)
	}
}
