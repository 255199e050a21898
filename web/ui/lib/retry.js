// A view's reload that failed for want of network (the stream may still have told it something
// changed) is tried again: when the browser is back online, and every few seconds until it works.
// Nothing told is dropped for a failed fetch.
export function retrying(load, everyMs = 2000) {
  let timer = null;
  let stopped = false;
  const again = () => {
    clearTimeout(timer);
    if (!stopped) timer = setTimeout(run, everyMs);
  };
  async function run() {
    clearTimeout(timer);
    if (stopped) return;
    const ok = await load().catch(() => false);
    if (ok === false) again();
  }
  const online = () => run();
  window.addEventListener("online", online);
  run.stop = () => {
    stopped = true;
    clearTimeout(timer);
    window.removeEventListener("online", online);
  };
  return run;
}

// Fetches that overlap (one after each stream event) may answer in any order. Each fetch asks for a
// turn before it starts and shows its answer only if no later one was asked meanwhile: an answer
// that comes back late (a slow network, a loaded server) never lands over a newer one.
export function newest() {
  let asked = 0;
  return () => {
    const turn = ++asked;
    return () => turn === asked;
  };
}
