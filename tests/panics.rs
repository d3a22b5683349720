//! What a panic ends under `charla serve`'s panic policy ([`charla::panics`]): its one
//! connection, or the whole process with exit code 101. Each case runs in a child process,
//! this test binary started again with [`CHILD`] naming the case.

use std::process::{Command, Output};

const CHILD: &str = "CHARLA_PANIC_TEST_CASE";

/// Runs as the child only: installs the policy, panics as `CHILD` says, and prints
/// `still running` if the process survived it.
#[test]
fn child() {
    let Ok(case) = std::env::var(CHILD) else { return };
    // Poisoned before the policy is in place, as by a panic while the hub was being changed.
    let hub = charla::hub::SharedHub::default();
    if case == "hub" {
        let poisoner = hub.clone();
        let _ = std::thread::spawn(move || {
            let _held = poisoner.lock();
            panic!("a bug while changing the hub");
        })
        .join();
    }
    charla::panics::install();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    match case.as_str() {
        "connection" => runtime.block_on(async {
            let task = tokio::spawn(charla::panics::connection(async { panic!("a bug in one connection") }));
            assert!(task.await.unwrap_err().is_panic());
        }),
        "dropped connection" => runtime.block_on(async {
            /// Panics when dropped: a bug in a connection's clean-up.
            struct Cleanup;
            impl Drop for Cleanup {
                fn drop(&mut self) {
                    panic!("a bug while a connection was dropped");
                }
            }
            let cleanup = Cleanup;
            let task = tokio::spawn(charla::panics::connection(async move {
                let _cleanup = cleanup;
                std::future::pending::<()>().await
            }));
            tokio::task::yield_now().await;
            task.abort();
            assert!(task.await.unwrap_err().is_panic());
        }),
        "task" => runtime.block_on(async {
            let _ = tokio::spawn(async { panic!("a bug in an accept loop") }).await;
        }),
        "thread" => {
            let writer = std::thread::Builder::new().name("charla-store".into());
            let _ = writer.spawn(|| panic!("a bug in the history writer")).unwrap().join();
        }
        "hub" => drop(charla::hub::lock(&hub)),
        _ => unreachable!("unknown case {case}"),
    }
    println!("still running");
}

fn run(case: &str) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, case)
        .output()
        .unwrap()
}

#[test]
fn a_panic_in_a_connection_ends_only_that_connection() {
    // In its code, or in its clean-up when its task is dropped (aborted, say).
    for case in ["connection", "dropped connection"] {
        let output = run(case);
        assert!(output.status.success(), "{case}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(String::from_utf8_lossy(&output.stdout).contains("still running"), "{case}");
    }
}

#[test]
fn a_panic_anywhere_else_ends_the_process_with_101() {
    for (case, said) in [
        ("task", "a bug in an accept loop"),
        ("thread", "charla: stopping: a bug in thread 'charla-store': "),
        ("hub", "charla: stopping: a panic left the chat state half-changed"),
    ] {
        let output = run(case);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(charla::panics::EXIT_CODE), "{case}: {stderr}");
        assert!(stderr.contains("charla: stopping: ") && stderr.contains(said), "{case}: {stderr}");
        assert!(!String::from_utf8_lossy(&output.stdout).contains("still running"), "{case}");
    }
}
