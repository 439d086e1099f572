package wire

// Contents of control messages, encoded with EncodeContent and decoded
// with DecodeContent. Field names on the wire are the msgpack tags.

// EngineInfo describes an engine: what it says of itself when it
// registers, and what the controller adds when it reports engines.
type EngineInfo struct {
	ID        int      `msgpack:"id" json:"id"`                              // assigned by the controller
	UUID      string   `msgpack:"uuid" json:"uuid"`                          // the engine's own random id
	Host      string   `msgpack:"host" json:"host"`                          // host name
	PID       int      `msgpack:"pid" json:"pid"`                            // process id on Host
	Cores     int      `msgpack:"cores" json:"cores"`                        // usable CPU cores
	JobKey    string   `msgpack:"jobkey,omitempty" json:"job_key,omitempty"` // launcher's key of the job the engine belongs to
	Job       int      `msgpack:"job,omitempty" json:"job,omitempty"`        // the controller's number for that job; 0 for none
	Rank      int      `msgpack:"rank" json:"rank"`                          // MPI rank within the job
	Size      int      `msgpack:"size" json:"size"`                          // MPI size of the job; 0 when not launched as MPI ranks
	Functions []string `msgpack:"fns,omitempty" json:"functions,omitempty"`  // names of registered functions

	// Filled in by the controller.
	State         string `msgpack:"state,omitempty" json:"state,omitempty"`       // "idle", "busy", "dead"
	Queued        int    `msgpack:"queued,omitempty" json:"queued"`               // tasks sent and not yet started
	Running       string `msgpack:"running,omitempty" json:"running,omitempty"`   // id of the running task
	Registered    int64  `msgpack:"reg,omitempty" json:"registered,omitempty"`    // Unix nanoseconds
	LastHeartbeat int64  `msgpack:"hb,omitempty" json:"last_heartbeat,omitempty"` // Unix nanoseconds
}

// RegisterReplyContent answers an engine's Register.
type RegisterReplyContent struct {
	ID          int    `msgpack:"id"`
	Job         int    `msgpack:"job,omitempty"` // the controller's number for the engine's job; 0 for none
	HeartbeatMS int    `msgpack:"hb_ms"`         // the period at which to send heartbeats
	ClusterID   string `msgpack:"cluster"`
}

// HeartbeatContent is what an engine reports with each heartbeat.
type HeartbeatContent struct {
	Queued  int    `msgpack:"q"`           // tasks waiting on the engine
	Running string `msgpack:"r,omitempty"` // id of the running task
}

// ConnectReplyContent answers a client's Connect.
type ConnectReplyContent struct {
	ClusterID   string       `msgpack:"cluster"`
	HeartbeatMS int          `msgpack:"hb_ms"`
	Engines     []EngineInfo `msgpack:"engines"`
}

// EnginesReplyContent lists the engines.
type EnginesReplyContent struct {
	Engines []EngineInfo `msgpack:"engines"`
}

// Engine events.
const (
	EventRegistered   = "registered"
	EventUnregistered = "unregistered"
	EventDied         = "died"
)

// EngineEventContent tells clients that an engine came or went.
type EngineEventContent struct {
	Event  string     `msgpack:"ev"`
	Engine EngineInfo `msgpack:"engine"`
	Reason string     `msgpack:"why,omitempty"`
}

// IDsContent lists message ids: of Abort, TaskStatus and Results
// requests, and of the aborts the controller sends engines.
type IDsContent struct {
	IDs []string `msgpack:"ids"`
}

// Task states reported by TaskStatus.
const (
	TaskPending   = "pending" // held by the controller's scheduler
	TaskQueued    = "queued"  // sent to an engine, not started
	TaskRunning   = "running"
	TaskDone      = "done"
	TaskFailed    = "failed"
	TaskAborted   = "aborted"
	TaskUnknown   = "unknown"
	TaskCancelled = "cancelled"
)

// TaskInfo is the controller's record of one task on one engine.
type TaskInfo struct {
	ID        string `msgpack:"id"`
	Engine    int    `msgpack:"e"` // NoEngine while pending
	State     string `msgpack:"state"`
	Submitted int64  `msgpack:"sub,omitempty"` // Unix nanoseconds, by the controller's clock
	Started   int64  `msgpack:"t0,omitempty"`
	Completed int64  `msgpack:"t1,omitempty"`
	Attempts  int    `msgpack:"tries,omitempty"`
}

// TaskStatusReplyContent answers TaskStatus.
type TaskStatusReplyContent struct {
	Tasks []TaskInfo `msgpack:"tasks"`
}

// ResultsReplyContent answers Results after the retained replies it asked
// for have been sent again; Missing lists ids with no retained result.
type ResultsReplyContent struct {
	Missing []string `msgpack:"missing"`
}

// ShutdownContent asks engines (the header's targets) and, with
// Controller, the controller itself to stop.
type ShutdownContent struct {
	Controller bool `msgpack:"controller"`
}
