// Starts Swagger UI on this server's OpenAPI document. The URL is relative
// to the page (/docs → /openapi.json), so a path prefix added by a proxy is
// kept; "try it out" then calls the same server the page came from.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: new URL("openapi.json", window.location.href).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    displayRequestDuration: true,
    defaultModelsExpandDepth: 0,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
