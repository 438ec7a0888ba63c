// Starts the app. A file, not an inline script, so the Content-Security-Policy can refuse
// every inline script.
import init from "/pkg/app.js";
// `init` instantiates the wasm module, whose start function mounts the app.
init({ module_or_path: "/pkg/app_bg.wasm" }).catch((err) => {
  console.error(err);
  document.body.textContent = "AutoLearn could not start in this browser: " + err;
});
