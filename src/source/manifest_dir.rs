//! A directory of manifests as a snapshot kept up to date file by file: with a watcher attached, a
//! load reads only the files the watcher named since the last one, and parses only their documents
//! whose text changed ([`super::documents`]), so an edit costs reading the edited file and parsing
//! the edited documents, not what the directory holds. Without a watcher (`isobar check`), or when
//! the watcher lost track (an overflow, a directory moved), the whole directory is read again;
//! either way the snapshot is the one reading every file in path order would give.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

// foldhash, as the DAG's maps: every object of a rewritten file passes through these maps, and
// std's SipHash was a visible part of a long file's rescan.
use foldhash::{HashMap, HashMapExt};
use smallvec::SmallVec;

use super::documents::{ParsedFile, Touched};
use super::file::{is_hidden, is_manifest_name, manifest_files};
use super::Change;
use crate::pipeline::Signal;
use crate::store::{KubeObject, ObjectKey, Snapshot, StoreKind};
use crate::{Error, Result};

/// A directory of manifests, what each file held the last time it parsed, and the snapshot they make.
#[derive(Debug)]
pub struct ManifestDir {
    dir: PathBuf,
    /// By path; the same shared path is each of the file's objects' holder.
    files: BTreeMap<Arc<Path>, ParsedFile>,
    /// Files that did not read or parse last time (their previous objects are kept).
    errors: BTreeMap<PathBuf, Arc<Error>>,
    /// The files that hold each object, sorted: the last in path order gives it, as a full read
    /// would. Almost always one file, kept inline.
    holders: HashMap<(StoreKind, ObjectKey), Holders>,
    snapshot: Snapshot,
    /// What the watcher saw since the last load; `None` without a watcher.
    dirty: Option<Arc<Mutex<Dirty>>>,
    /// Whether the directory was read whole once.
    scanned: bool,
}

/// The files holding one object.
type Holders = SmallVec<[Arc<Path>; 1]>;

/// Paths the watcher reported, or that it lost track and the directory must be read whole.
#[derive(Debug, Default)]
struct Dirty {
    paths: BTreeSet<PathBuf>,
    rescan: bool,
    /// Files being written in place: modified and not yet closed. Read before the writer closes
    /// them, they may be empty or cut short (a shell's `>` truncates first), which would take their
    /// objects' routes away until the next read; they are read once closed.
    writing: BTreeSet<PathBuf>,
}

/// Whether the watcher tells when a file written to is closed (inotify does): only then does a
/// modified file wait for its writer to close it.
const CLOSE_IS_SEEN: bool = cfg!(target_os = "linux");

/// The outcome of reading the directory.
#[derive(Debug)]
pub struct Loaded {
    pub snapshot: Snapshot,
    /// Files that did not parse (their previous objects were kept).
    pub errors: Vec<Arc<Error>>,
}

/// What a watched path is to the directory.
enum Watched {
    /// Hidden, or a file that is not a manifest: changes nothing.
    Ignored,
    /// A manifest file.
    File,
    /// Anything else (a directory, most likely): read the directory whole.
    Other,
}

impl ManifestDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ManifestDir {
            dir: dir.into(),
            files: BTreeMap::new(),
            errors: BTreeMap::new(),
            holders: HashMap::new(),
            snapshot: Snapshot::default(),
            dirty: None,
            scanned: false,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Watches the directory: every change to a manifest in it is noted for the next load and signals a
    /// routing change (the builder coalesces them). The returned watcher must be kept alive.
    pub fn watch(&mut self, signal: Arc<Signal>) -> Result<notify::RecommendedWatcher> {
        use notify::Watcher;
        let dirty = Arc::new(Mutex::new(Dirty::default()));
        let noted = Arc::clone(&dirty);
        let root = self.dir.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let relevant = match event {
                    Ok(e) => note(&noted, &root, &e),
                    Err(_) => {
                        noted.lock().unwrap_or_else(PoisonError::into_inner).rescan = true;
                        true
                    }
                };
                if relevant {
                    signal.change(Change::Routing, std::time::Instant::now());
                }
            })?;
        watcher.watch(&self.dir, notify::RecursiveMode::Recursive)?;
        // Whatever happened before the watch started is covered by the first (whole) read.
        self.dirty = Some(dirty);
        Ok(watcher)
    }

    /// Brings the snapshot up to date: every file on the first load, when unwatched, or when the watcher
    /// lost track; otherwise only the files the watcher named. A file is parsed only when its text
    /// changed. An unreadable directory is an error; a bad file is reported in [`Loaded::errors`] and
    /// its last good objects are used.
    pub fn load(&mut self) -> Result<Loaded> {
        let noted = match &self.dirty {
            Some(dirty) => {
                let mut d = dirty.lock().unwrap_or_else(PoisonError::into_inner);
                // Files still being written stay noted as such.
                let (paths, rescan) = (std::mem::take(&mut d.paths), std::mem::take(&mut d.rescan));
                // The first load reads everything, which covers what was noted so far.
                (self.scanned && !rescan).then_some(paths)
            }
            None => None,
        };
        match noted {
            Some(paths) => self.read_noted(paths)?,
            None => self.read_all()?,
        }
        self.scanned = true;
        Ok(Loaded {
            snapshot: self.snapshot.clone(),
            errors: self.errors.values().cloned().collect(),
        })
    }

    fn read_all(&mut self) -> Result<()> {
        let paths = manifest_files(&self.dir)?;
        let listed: BTreeSet<&PathBuf> = paths.iter().collect();
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .map(|p| p.to_path_buf())
            .chain(self.errors.keys().cloned())
            .filter(|p| !listed.contains(p))
            .collect();
        for path in gone {
            self.forget(&path);
        }
        for path in &paths {
            self.read(path);
        }
        Ok(())
    }

    fn read_noted(&mut self, paths: BTreeSet<PathBuf>) -> Result<()> {
        // A path that is not a manifest file, or one that was a directory holding known files, may
        // have taken files with it or brought some: the directory is read whole.
        let whole = paths.iter().any(|p| match watched(&self.dir, p) {
            Watched::Ignored => false,
            Watched::File => p.is_dir(),
            Watched::Other => true,
        });
        if whole {
            return self.read_all();
        }
        for path in paths {
            if matches!(watched(&self.dir, &path), Watched::File) {
                self.read(&path);
            }
        }
        Ok(())
    }

    /// Reads one file (gone: its objects go too).
    fn read(&mut self, path: &Path) {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.forget(path);
                return;
            }
            Err(e) => {
                self.errors
                    .insert(path.to_path_buf(), Arc::new(Error::io(path, e)));
                return;
            }
        };
        // The file's unchanged objects stay the snapshot's shared values (one copy, and the
        // incremental build sees only what changed).
        let snapshot = &self.snapshot;
        let share = |o: KubeObject| snapshot.held_equal(&o).unwrap_or(o);
        let name = path.display().to_string();
        match ParsedFile::parse(&name, &text, self.files.get_mut(path), share) {
            // Unchanged since it last parsed (or back to that after a bad edit).
            Ok(None) => {
                self.errors.remove(path);
            }
            Ok(Some((parsed, touched))) => {
                self.errors.remove(path);
                self.replace(path, Some(parsed), touched);
            }
            Err(e) => {
                self.errors.insert(path.to_path_buf(), Arc::new(e));
            }
        }
    }

    fn forget(&mut self, path: &Path) {
        self.errors.remove(path);
        self.replace(path, None, Touched::All);
    }

    /// Puts `parsed` in place of what `path` held, and the `touched` objects in the snapshot as the
    /// files now give them (what the file gives for any other object is unchanged).
    fn replace(&mut self, path: &Path, parsed: Option<ParsedFile>, touched: Touched) {
        // The file's path as its objects' holders share it.
        let (shared, old) = match self.files.remove_entry(path) {
            Some((shared, old)) => (shared, Some(old)),
            None => (Arc::from(path), None),
        };
        // What the file gives for each touched object: its last document naming it, the first seen
        // from the file's end. One pass: looking each up in the file would be quadratic in its length.
        let from_end = parsed.iter().flat_map(|p| p.objects.iter().rev());
        let given: HashMap<(StoreKind, ObjectKey), Option<KubeObject>> = match &touched {
            Touched::All => {
                // Every object the file gives, then those it gave and no longer does.
                let mut given = HashMap::new();
                for object in from_end {
                    given
                        .entry(object.id())
                        .or_insert_with(|| Some(object.clone()));
                }
                for object in old.iter().flat_map(|p| &p.objects) {
                    given.entry(object.id()).or_insert(None);
                }
                given
            }
            Touched::Objects(objects) => {
                // Looked up by borrowed ids: the scan may pass most of a long file's objects, and
                // building each one's key would be two allocations apiece.
                let mut found: HashMap<_, Option<&KubeObject>> =
                    objects.iter().map(|o| (o.id_ref(), None)).collect();
                let mut missing = found.len();
                for object in from_end {
                    if missing == 0 {
                        break;
                    }
                    if let Some(slot @ None) = found.get_mut(&object.id_ref()) {
                        *slot = Some(object);
                        missing -= 1;
                    }
                }
                objects
                    .iter()
                    .map(|o| (o.id(), found[&o.id_ref()].cloned()))
                    .collect()
            }
        };
        if let Some(parsed) = parsed {
            self.files.insert(Arc::clone(&shared), parsed);
        }
        for (id, object) in given {
            let holders = self.holders.entry(id.clone()).or_default();
            match (&object, holders.binary_search_by(|p| (**p).cmp(path))) {
                (Some(_), Err(at)) => holders.insert(at, Arc::clone(&shared)),
                (None, Ok(at)) => {
                    holders.remove(at);
                }
                _ => {}
            }
            self.settle(id, path, object);
        }
    }

    /// Puts in the snapshot the object `id` as the last file holding it gives it (its last document
    /// naming it), or takes it out when no file does. `given` is what the file at `path`, just read,
    /// gives for it.
    fn settle(&mut self, id: (StoreKind, ObjectKey), path: &Path, given: Option<KubeObject>) {
        let winner = match self.holders.get(&id).and_then(|h| h.last()) {
            Some(last) if **last == *path => given,
            Some(last) => self
                .files
                .get(last)
                .and_then(|file| file.objects.iter().rev().find(|o| o.id() == id))
                .cloned(),
            None => None,
        };
        match winner {
            // Mostly the held object itself (a file's objects are shared when read); an equal one
            // from another file leaves the snapshot as it is too.
            Some(object) if self.snapshot.held_equal(&object).is_some() => {}
            Some(object) => self.snapshot.insert_at(id.1, object),
            None => {
                self.holders.remove(&id);
                self.snapshot.remove(id.0, &id.1);
            }
        }
    }
}

/// Notes the paths of a watcher's event; whether it may change anything.
fn note(dirty: &Mutex<Dirty>, root: &Path, event: &notify::Event) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
    let mut d = dirty.lock().unwrap_or_else(PoisonError::into_inner);
    if event.need_rescan() || event.paths.is_empty() {
        d.rescan = true;
        return true;
    }
    let closed = matches!(
        event.kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
    );
    // Opened, closed after reading: changes nothing.
    if event.kind.is_access() && !closed {
        return false;
    }
    let written = matches!(event.kind, EventKind::Modify(ModifyKind::Data(_)));
    // Gone or renamed: read now, whoever was writing it.
    let moved =
        event.kind.is_remove() || matches!(event.kind, EventKind::Modify(ModifyKind::Name(_)));
    let mut relevant = false;
    for path in &event.paths {
        match watched(root, path) {
            Watched::Ignored => {}
            Watched::File if CLOSE_IS_SEEN && !closed && !moved => {
                if written {
                    d.writing.insert(path.clone());
                }
                if !d.writing.contains(path) {
                    d.paths.insert(path.clone());
                    relevant = true;
                }
            }
            Watched::File | Watched::Other => {
                d.writing.remove(path);
                d.paths.insert(path.clone());
                relevant = true;
            }
        }
    }
    relevant
}

/// What `path` (under `root`) is to the directory, by its name alone (it may be gone already).
fn watched(root: &Path, path: &Path) -> Watched {
    let Ok(relative) = path.strip_prefix(root) else {
        return Watched::Other;
    };
    if relative.as_os_str().is_empty() {
        return Watched::Other;
    }
    // A ConfigMap's or Secret's volume (kubelet's atomic writer) swaps new content in by renaming
    // a hidden `..data` symlink that its visible files point through: no event names those files.
    if relative
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with(".."))
    {
        return Watched::Other;
    }
    if relative.components().any(|c| is_hidden(c.as_os_str())) {
        return Watched::Ignored;
    }
    if is_manifest_name(path) {
        Watched::File
    } else {
        Watched::Other
    }
}

#[cfg(test)]
#[path = "manifest_dir_tests.rs"]
mod tests;
