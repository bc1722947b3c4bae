// ESLint for the web client (`make lint-js`): ESLint's recommended rules on the browser's
// native ES modules in web/. Nothing is bundled, so what is linted is what the browser runs.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: [".venv/", ".run/", "node_modules/"] }, // .run/static: collectstatic's copies of others' files
  js.configs.recommended,
  {
    files: ["web/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: globals.browser,
    },
  },
  {
    files: ["eslint.config.js"],
    languageOptions: { sourceType: "module", globals: globals.node },
  },
];
