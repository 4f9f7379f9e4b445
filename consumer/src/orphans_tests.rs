//! When the watch fails a broadcast job, and what it says.

use super::*;
use taskq_common::job::JobSpec;
use taskq_common::registry::{Crashed, Load, WorkerInfo, WorkerState};

fn member(id: &str, instance: &str) -> Member {
    Member {
        worker_id: id.into(),
        instance: instance.into(),
    }
}

fn live(id: &str, instance: &str) -> WorkerInfo {
    WorkerInfo {
        worker_id: id.into(),
        instance: instance.into(),
        host: "host".into(),
        pid: 1,
        version: "0".into(),
        cpu_threads: 1,
        io_concurrency: 1,
        queues: Vec::new(),
        kinds: Vec::new(),
        started_at_ms: 0,
        heartbeat_at_ms: now_ms(),
        state: WorkerState::Running,
        load: Load::default(),
    }
}

fn state(status: JobStatus, chunks_done: u32) -> JobState {
    JobState {
        spec: JobSpec {
            id: JobId::new(),
            kind: "square".into(),
            total_chunks: 10,
            total_items: 100,
            submitted_at_ms: 0,
        },
        status,
        chunks_done,
        items_done: 0,
        items_failed: 0,
        duplicates: 0,
        error: None,
        summary: None,
    }
}

#[test]
fn a_running_job_whose_members_are_all_gone_fails_after_the_grace_without_progress() {
    let members = [member("w1", "a"), member("w2", "b")];
    let membership = Membership {
        // w1 runs again, as another instance: not a member. w2 crashed 20 s ago.
        live: vec![live("w1", "new")],
        crashed: vec![Crashed {
            worker_id: "w2".into(),
            last_heartbeat_ms: now_ms() - 20_000,
        }],
    };
    let mut orphans = Orphans::default();
    let job = JobId::new();
    let start = Instant::now();
    let at = |orphans: &mut Orphans, state: &JobState, after: Duration| {
        orphans.verdict(job, Some(state), Some(&members), &membership, start + after)
    };
    let running = state(JobStatus::Running, 3);
    assert_eq!(at(&mut orphans, &running, Duration::ZERO), Verdict::Wait);
    assert_eq!(at(&mut orphans, &running, GRACE / 2), Verdict::Wait);
    // A chunk recorded meanwhile (results still arriving) starts the grace again.
    let progressed = state(JobStatus::Running, 4);
    assert_eq!(at(&mut orphans, &progressed, GRACE), Verdict::Wait);
    assert_eq!(
        at(&mut orphans, &progressed, GRACE + GRACE / 2),
        Verdict::Wait
    );
    let Verdict::Fail(reason) = at(&mut orphans, &progressed, GRACE * 2) else {
        panic!("the job must fail");
    };
    assert_eq!(
        reason,
        "every member of this broadcast job stopped before it finished: w1 (restarted since: the \
         new run is not a member), w2 (last heartbeat 20 s ago); 4 of 10 chunks have results, and \
         the others were held only by those workers, so nobody can run them. Nothing was taken \
         over: broadcast the job again to the live workers"
    );
}

#[test]
fn a_job_with_a_live_member_or_not_running_waits_and_an_ended_one_is_forgotten() {
    let members = [member("w1", "a"), member("w2", "b")];
    let one_alive = Membership {
        live: vec![live("w2", "b")],
        crashed: Vec::new(),
    };
    let nobody = Membership::default();
    let mut orphans = Orphans::default();
    let job = JobId::new();
    let start = Instant::now();
    let running = state(JobStatus::Running, 0);
    for after in [Duration::ZERO, GRACE, GRACE * 3] {
        let verdict = orphans.verdict(
            job,
            Some(&running),
            Some(&members),
            &one_alive,
            start + after,
        );
        assert_eq!(verdict, Verdict::Wait);
    }
    for status in [JobStatus::Submitting, JobStatus::Cancelling] {
        for after in [Duration::ZERO, GRACE * 3] {
            let verdict = orphans.verdict(
                job,
                Some(&state(status, 0)),
                Some(&members),
                &nobody,
                start + after,
            );
            assert_eq!(verdict, Verdict::Wait, "{status:?}");
        }
    }
    for status in [
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ] {
        let verdict = orphans.verdict(
            job,
            Some(&state(status, 10)),
            Some(&members),
            &nobody,
            start,
        );
        assert_eq!(verdict, Verdict::Forget);
    }
    assert_eq!(
        orphans.verdict(job, None, Some(&members), &nobody, start),
        Verdict::Forget
    );
    assert_eq!(
        orphans.verdict(job, Some(&running), None, &nobody, start),
        Verdict::Forget
    );
    // A member that left gracefully unregistered.
    assert_eq!(gone(&members[0], &nobody), "unregistered: it stopped");
}
