use proptest::prelude::*;

use super::*;
use crate::source::file::parse_manifests;

const GOOD: &str =
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\nspec:\n  ports:\n  - port: 80\n";

impl ManifestDir {
    /// Tracks changes as a watcher would, with the paths given by the test.
    fn noting(&mut self) -> Arc<Mutex<Dirty>> {
        let dirty = Arc::new(Mutex::new(Dirty::default()));
        self.dirty = Some(Arc::clone(&dirty));
        dirty
    }
}

fn service(name: &str, port: u16) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  ports:\n  - port: {port}\n")
}

/// The snapshot as names and ports, comparable across loads.
fn services(snapshot: &Snapshot) -> Vec<(String, i32)> {
    snapshot
        .services
        .iter()
        .map(|(k, s)| {
            let port = s.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port;
            (k.name.to_string(), port)
        })
        .collect()
}

#[test]
fn a_broken_file_keeps_its_last_good_objects() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), GOOD).unwrap();
    let mut manifests = ManifestDir::new(dir.path());
    let loaded = manifests.load().unwrap();
    assert!(loaded.errors.is_empty());
    assert_eq!(loaded.snapshot.services.len(), 1);
    std::fs::write(dir.path().join("a.yaml"), "kind: [").unwrap();
    let loaded = manifests.load().unwrap();
    assert_eq!(loaded.errors.len(), 1);
    assert_eq!(loaded.snapshot.services.len(), 1);
}

#[test]
fn a_broken_file_stays_reported_until_mended_when_only_others_change() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    std::fs::write(&a, "kind: [").unwrap();
    std::fs::write(&b, service("b", 80)).unwrap();
    let mut manifests = ManifestDir::new(dir.path());
    let dirty = manifests.noting();
    assert_eq!(manifests.load().unwrap().errors.len(), 1);
    std::fs::write(&b, service("b", 81)).unwrap();
    dirty.lock().unwrap().paths.insert(b.clone());
    let loaded = manifests.load().unwrap();
    assert_eq!(loaded.errors.len(), 1, "a.yaml is still broken");
    assert_eq!(services(&loaded.snapshot), [("b".to_string(), 81)]);
    std::fs::write(&a, service("a", 80)).unwrap();
    dirty.lock().unwrap().paths.insert(a);
    let loaded = manifests.load().unwrap();
    assert!(loaded.errors.is_empty());
    assert_eq!(services(&loaded.snapshot).len(), 2);
}

#[test]
fn a_noted_load_reads_only_the_noted_files() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    std::fs::write(&a, service("a", 80)).unwrap();
    std::fs::write(&b, service("b", 80)).unwrap();
    let mut manifests = ManifestDir::new(dir.path());
    let dirty = manifests.noting();
    manifests.load().unwrap();
    // b changes unseen by the (test's) watcher; a's change is noted: only a is read.
    std::fs::write(&a, service("a", 81)).unwrap();
    std::fs::write(&b, service("b", 81)).unwrap();
    dirty.lock().unwrap().paths.insert(a);
    let loaded = manifests.load().unwrap();
    assert_eq!(
        services(&loaded.snapshot),
        [("a".to_string(), 81), ("b".to_string(), 80)]
    );
    // A lost track (an overflow) reads everything.
    dirty.lock().unwrap().rescan = true;
    let loaded = manifests.load().unwrap();
    assert_eq!(
        services(&loaded.snapshot),
        [("a".to_string(), 81), ("b".to_string(), 81)]
    );
}

#[test]
fn an_unchanged_file_gives_the_same_shared_objects() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    std::fs::write(&a, service("a", 80)).unwrap();
    std::fs::write(&b, service("b", 80)).unwrap();
    let mut manifests = ManifestDir::new(dir.path());
    let dirty = manifests.noting();
    let first = manifests.load().unwrap().snapshot;
    std::fs::write(&b, service("b", 81)).unwrap();
    dirty.lock().unwrap().paths.extend([a, b]);
    let second = manifests.load().unwrap().snapshot;
    let key = ObjectKey::new("default", "a");
    assert!(Arc::ptr_eq(&first.services[&key], &second.services[&key]));
}

#[test]
fn an_unchanged_object_of_a_changed_file_stays_shared() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    std::fs::write(&a, format!("{}---\n{}", service("a", 80), service("b", 80))).unwrap();
    let mut manifests = ManifestDir::new(dir.path());
    let dirty = manifests.noting();
    let first = manifests.load().unwrap().snapshot;
    std::fs::write(&a, format!("{}---\n{}", service("a", 80), service("b", 81))).unwrap();
    dirty.lock().unwrap().paths.insert(a);
    let second = manifests.load().unwrap().snapshot;
    let (ka, kb) = (
        ObjectKey::new("default", "a"),
        ObjectKey::new("default", "b"),
    );
    assert!(Arc::ptr_eq(&first.services[&ka], &second.services[&ka]));
    assert!(!Arc::ptr_eq(&first.services[&kb], &second.services[&kb]));
    assert_eq!(
        services(&second),
        [("a".to_string(), 80), ("b".to_string(), 81)]
    );
}

/// A file written in place (truncated, then written) is read once its writer closes it: read in
/// between, it would be empty or cut short and take its objects' routes away. (The real watcher:
/// inotify tells when a file written to is closed.)
#[cfg(target_os = "linux")]
#[test]
fn a_file_written_in_place_is_read_once_its_writer_closes_it() {
    use std::io::Write;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    std::fs::write(&a, service("a", 80)).unwrap();
    let mut manifests = ManifestDir::new(dir.path());
    let _watcher = manifests
        .watch(Arc::new(crate::pipeline::Signal::default()))
        .unwrap();
    manifests.load().unwrap();
    let dirty = Arc::clone(manifests.dirty.as_ref().unwrap());
    let noted = |what: &str, check: &dyn Fn(&Dirty) -> bool| {
        isobar_harness::wait_for(Duration::from_secs(10), what, || {
            check(&dirty.lock().unwrap()).then_some(())
        })
        .unwrap()
    };

    // Truncated, nothing written yet, still open: the watcher saw it modified.
    let mut file = std::fs::File::create(&a).unwrap();
    noted("a.yaml noted as being written", &|d| d.writing.contains(&a));
    let loaded = manifests.load().unwrap();
    assert_eq!(services(&loaded.snapshot), [("a".to_string(), 80)]);
    assert!(loaded.errors.is_empty());

    file.write_all(service("a", 81).as_bytes()).unwrap();
    drop(file);
    noted("a.yaml noted once closed", &|d| {
        d.paths.contains(&a) && d.writing.is_empty()
    });
    let loaded = manifests.load().unwrap();
    assert_eq!(services(&loaded.snapshot), [("a".to_string(), 81)]);
}

/// A ConfigMap mounted as the directory: kubelet writes each version into a hidden directory and
/// swaps a hidden `..data` symlink to it, through which the visible files point. The swap is seen.
#[test]
fn a_config_map_volume_s_new_version_is_read() {
    use std::os::unix::fs::symlink;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let version = |name: &str, port: u16| {
        std::fs::create_dir(root.join(name)).unwrap();
        std::fs::write(root.join(name).join("m.yaml"), service("a", port)).unwrap();
    };
    version("..v1", 80);
    symlink("..v1", root.join("..data")).unwrap();
    symlink("..data/m.yaml", root.join("m.yaml")).unwrap();
    let mut manifests = ManifestDir::new(root);
    let _watcher = manifests
        .watch(Arc::new(crate::pipeline::Signal::default()))
        .unwrap();
    let loaded = manifests.load().unwrap();
    assert_eq!(services(&loaded.snapshot), [("a".to_string(), 80)]);
    let dirty = Arc::clone(manifests.dirty.as_ref().unwrap());

    version("..v2", 81);
    symlink("..v2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    isobar_harness::wait_for(Duration::from_secs(10), "the swap noted", || {
        let d = dirty.lock().unwrap();
        d.paths.contains(&root.join("..data")).then_some(())
    })
    .unwrap();
    let loaded = manifests.load().unwrap();
    assert_eq!(services(&loaded.snapshot), [("a".to_string(), 81)]);
}

/// One step of a random edit session on three files (and one in a subdirectory).
#[derive(Debug, Clone)]
enum Edit {
    /// Writes services `names` (with `port`) into file `file`, with a document that does not parse
    /// at `broken` (if it is within them).
    Write {
        file: usize,
        names: Vec<u8>,
        port: u16,
        broken: Option<usize>,
    },
    /// Writes file `file`'s documents in the reverse order (a file that is not there stays so).
    Reverse {
        file: usize,
    },
    /// Writes text that does not parse.
    Break {
        file: usize,
    },
    Remove {
        file: usize,
    },
    /// Renames a file over another.
    Rename {
        from: usize,
        to: usize,
    },
    /// A hidden file (an editor's swap file), which never counts.
    Hidden {
        names: Vec<u8>,
    },
}

const FILES: [&str; 4] = ["a.yaml", "b.yml", "c.json", "sub/d.yaml"];

fn edit() -> impl Strategy<Value = Edit> {
    let names = prop::collection::vec(0u8..4, 0..6);
    prop_oneof![
        4 => (0..FILES.len(), names.clone(), 1u16..4, prop::option::weighted(0.2, 0..6usize))
            .prop_map(|(file, names, port, broken)| Edit::Write { file, names, port, broken }),
        1 => (0..FILES.len()).prop_map(|file| Edit::Reverse { file }),
        1 => (0..FILES.len()).prop_map(|file| Edit::Break { file }),
        1 => (0..FILES.len()).prop_map(|file| Edit::Remove { file }),
        1 => (0..FILES.len(), 0..FILES.len()).prop_map(|(from, to)| Edit::Rename { from, to }),
        1 => names.prop_map(|names| Edit::Hidden { names }),
    ]
}

/// Applies `edit` under `root`; the paths a watcher would name.
fn apply(root: &Path, edit: &Edit) -> Vec<PathBuf> {
    let path = |f: usize| root.join(FILES[f]);
    let documents = |names: &[u8], port: u16| -> Vec<String> {
        // Each document its own port: a name given twice in one file differs, and the last wins.
        names
            .iter()
            .enumerate()
            .map(|(i, n)| service(&format!("s{n}"), port + 10 * i as u16))
            .collect()
    };
    let text = |names: &[u8], port: u16| documents(names, port).join("---\n");
    match edit {
        Edit::Write {
            file,
            names,
            port,
            broken,
        } => {
            let mut documents = documents(names, *port);
            if let Some(at) = broken.filter(|at| *at <= documents.len()) {
                documents.insert(at, "kind: [\n".to_string());
            }
            std::fs::write(path(*file), documents.join("---\n")).unwrap();
            vec![path(*file)]
        }
        Edit::Reverse { file } => {
            if let Ok(text) = std::fs::read_to_string(path(*file)) {
                let mut documents: Vec<&str> = text.split("---\n").collect();
                documents.reverse();
                std::fs::write(path(*file), documents.join("---\n")).unwrap();
            }
            vec![path(*file)]
        }
        Edit::Break { file } => {
            std::fs::write(path(*file), "kind: [").unwrap();
            vec![path(*file)]
        }
        Edit::Remove { file } => {
            let _ = std::fs::remove_file(path(*file));
            vec![path(*file)]
        }
        Edit::Rename { from, to } => {
            let _ = std::fs::rename(path(*from), path(*to));
            vec![path(*from), path(*to)]
        }
        Edit::Hidden { names } => {
            let hidden = root.join(".a.yaml.swp");
            std::fs::write(&hidden, text(names, 9)).unwrap();
            vec![hidden]
        }
    }
}

/// The directory as the first file source read it: every file in path order, each object replacing any
/// earlier one of the same kind and key, a file that does not parse giving its last good text's objects.
fn read_from_nothing(root: &Path, last_good: &mut BTreeMap<PathBuf, String>) -> (Snapshot, usize) {
    let files = manifest_files(root).unwrap();
    last_good.retain(|p, _| files.contains(p));
    let mut snapshot = Snapshot::default();
    let mut errors = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        if parse_manifests("f", &text).is_ok() {
            last_good.insert(path.clone(), text);
        } else {
            errors += 1;
        }
        for object in last_good
            .get(&path)
            .map(|t| parse_manifests("f", t).unwrap())
            .unwrap_or_default()
        {
            snapshot.insert(object);
        }
    }
    (snapshot, errors)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::proptest_cases::or(64)))]

    /// After any edits, a directory kept up to date from noted paths holds what reading every file from
    /// nothing gives, errors included (a broken file's last good objects stay in both).
    #[test]
    fn noted_loads_equal_a_whole_read(edits in prop::collection::vec(edit(), 1..12)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let mut kept = ManifestDir::new(dir.path());
        let dirty = kept.noting();
        let mut last_good = BTreeMap::new();
        kept.load().unwrap();
        for edit in &edits {
            let paths = apply(dir.path(), edit);
            dirty.lock().unwrap().paths.extend(paths);
            let incremental = kept.load().unwrap();
            let (reference, errors) = read_from_nothing(dir.path(), &mut last_good);
            prop_assert_eq!(services(&incremental.snapshot), services(&reference));
            prop_assert_eq!(incremental.errors.len(), errors);
        }
    }
}
