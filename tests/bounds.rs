//! Counters at the edges of their plausible ranges, through the binary: the largest accepted
//! value is summed exactly however many records carry it, one more is rejected naming the
//! field, and u64::MAX (which used to wrap a window's sum) is rejected too.

use std::process::Command;

use vigil::event::{MAX_BYTES, MAX_PACKETS};

#[test]
fn counters_at_their_bounds_are_summed_exactly_and_beyond_them_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let base = 1_767_571_200_000i64;
    let mut csv =
        String::from("ts,device_id,src_ip,dst_ip,dst_port,protocol,bytes_out,bytes_in,packets,duration_ms,value\n");
    // 5,000 records at the bounds for one device within one minute.
    for i in 0..5_000 {
        csv.push_str(&format!(
            "{},vm-max,10.0.0.1,8.8.8.8,443,tcp,{MAX_BYTES},{MAX_BYTES},{MAX_PACKETS},1,\n",
            base + i * 10
        ));
    }
    csv.push_str(&format!(
        "{},vm-max,10.0.0.1,8.8.8.8,443,tcp,{},0,0,0,\n",
        base + 50_000,
        MAX_BYTES + 1
    ));
    csv.push_str(&format!(
        "{},vm-max,10.0.0.1,8.8.8.8,443,tcp,0,{},0,0,\n",
        base + 50_001,
        u64::MAX
    ));
    csv.push_str(&format!(
        "{},vm-max,10.0.0.1,8.8.8.8,443,tcp,0,0,{},0,\n",
        base + 50_002,
        MAX_PACKETS + 1
    ));
    let input = dir.path().join("edges.csv");
    std::fs::write(&input, csv).unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["run", "--serve", "off", "--progress", "never", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .env("VIGIL_LOG", "warn")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(out.join("windows.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["count"], 5_000);
    assert_eq!(rows[0]["bytes_out"].as_u64(), Some(5_000 * MAX_BYTES));
    assert_eq!(rows[0]["bytes_in"].as_u64(), Some(5_000 * MAX_BYTES));
    assert_eq!(rows[0]["bytes_out_external"].as_u64(), Some(5_000 * MAX_BYTES));
    assert_eq!(rows[0]["packets"].as_u64(), Some(5_000 * MAX_PACKETS));
    let rejects: Vec<(u64, String, String)> = std::fs::read_to_string(out.join("rejects.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|r| {
            let field = r["detail"].as_str().unwrap().split(' ').next().unwrap().to_string();
            (
                r["line"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
                field,
            )
        })
        .collect();
    let too_large = |line: u64, field: &str| (line, "too_large".to_string(), field.to_string());
    assert_eq!(
        rejects,
        [
            too_large(5_002, "bytes_out"),
            too_large(5_003, "bytes_in"),
            too_large(5_004, "packets")
        ]
    );
}
