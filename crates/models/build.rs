//! Puts libxgboost where `cargo test` and `cargo run` find it at run time.
//!
//! The xgb crate links against `$XGBOOST_LIB_DIR` (set in .cargo/config.toml to the library
//! scripts/install-deps.sh unpacks), but cargo only adds search paths inside the target
//! directory to the library path of the programs it runs. So the library is copied into
//! OUT_DIR, keeping the wheel's layout (libxgboost.so finds its bundled libgomp through
//! `$ORIGIN/../../xgboost_cpu.libs`), and that copy is declared as a search path.

use std::path::{Path, PathBuf};

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

fn main() {
    println!("cargo:rerun-if-env-changed=XGBOOST_LIB_DIR");
    let Some(lib_dir) = std::env::var_os("XGBOOST_LIB_DIR").map(PathBuf::from) else {
        return;
    };
    let Ok(lib_dir) = lib_dir.canonicalize() else {
        println!("cargo:warning=XGBOOST_LIB_DIR does not exist; run scripts/install-deps.sh");
        return;
    };
    println!(
        "cargo:rerun-if-changed={}",
        lib_dir.join("libxgboost.so").display()
    );
    let Some(wheel_root) = lib_dir.parent().and_then(Path::parent) else {
        return;
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let copy_lib = out.join("xgboost").join("lib");
    let copied = copy_dir(&lib_dir, &copy_lib).and_then(|()| {
        let gomp = wheel_root.join("xgboost_cpu.libs");
        if gomp.is_dir() {
            copy_dir(&gomp, &out.join("xgboost_cpu.libs"))
        } else {
            Ok(())
        }
    });
    match copied {
        Ok(()) => println!("cargo:rustc-link-search=native={}", copy_lib.display()),
        Err(e) => println!("cargo:warning=cannot copy libxgboost into OUT_DIR: {e}"),
    }
}
