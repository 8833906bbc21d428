package borgerblik;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.olingo.client.api.ODataClient;
import org.apache.olingo.client.api.communication.ODataClientErrorException;
import org.apache.olingo.client.api.communication.ODataServerErrorException;
import org.apache.olingo.client.api.communication.request.ODataBasicRequest;
import org.apache.olingo.client.api.communication.request.retrieve.EdmMetadataRequest;
import org.apache.olingo.client.api.communication.request.retrieve.ODataEntityRequest;
import org.apache.olingo.client.api.communication.request.retrieve.ODataEntitySetRequest;
import org.apache.olingo.client.api.communication.request.retrieve.ODataValueRequest;
import org.apache.olingo.client.api.domain.ClientEntity;
import org.apache.olingo.client.api.domain.ClientEntitySet;
import org.apache.olingo.client.api.domain.ClientProperty;
import org.apache.olingo.client.api.uri.FilterArgFactory;
import org.apache.olingo.client.api.uri.FilterFactory;
import org.apache.olingo.client.api.uri.URIFilter;
import org.apache.olingo.client.core.ODataClientFactory;
import org.apache.olingo.commons.api.edm.Edm;
import org.apache.olingo.commons.api.edm.EdmEntityType;
import org.apache.olingo.commons.api.edm.EdmPrimitiveType;
import org.apache.olingo.commons.api.edm.EdmProperty;
import org.apache.olingo.commons.api.format.ContentType;

/**
 * Queries the analytics OData feed with Apache Olingo's OData v4 client, as a BI tool would, and
 * prints what it read as one JSON object for test_olingo_client.py to compare with the JSON API.
 *
 * <p>Arguments: the service root (http://host:port/odata), a bearer token, a round id.
 */
public final class OlingoCheck {
  private static final String SET = "Indicators";

  public static void main(String[] args) throws Exception {
    String root = args[0];
    String token = args[1];
    String round = args[2];
    ODataClient client = ODataClientFactory.getClient();
    client.getConfiguration().setDefaultPubFormat(ContentType.JSON);
    Map<String, Object> out = new LinkedHashMap<>();

    // $metadata: parsed into Olingo's EDM; every value read below is checked against its type.
    EdmMetadataRequest metadataRequest = client.getRetrieveRequestFactory().getMetadataRequest(root);
    authorize(metadataRequest, token);
    Edm edm = metadataRequest.execute().getBody();
    EdmEntityType type = edm.getEntityContainer().getEntitySet(SET).getEntityType();
    out.put("key", type.getKeyPredicateNames());
    out.put("described", describedProperties(type));

    // Sort, then keep the top rows (Power BI's "sort, keep top rows").
    URIFilter ofRound = client.getFilterFactory().eq("round_id", round);
    URI sortedTop = client.newURIBuilder(root).appendEntitySetSegment(SET).filter(ofRound).orderBy("mean desc").top(20).build();
    out.put("sorted_top_uri", sortedTop.toString());
    out.put("sorted_top", ids(entities(client, sortedTop, token), type));

    // A parenthesised filter as Olingo's FilterFactory writes it: ((a eq x) and ((b gt y) or (not (c eq z)))),
    // with a string function beside.
    FilterFactory f = client.getFilterFactory();
    FilterArgFactory arg = f.getArgFactory();
    URIFilter nested = f.and(
        f.and(ofRound, f.eq("dimension", "maalgruppe")),
        f.and(
            f.or(f.gt("mean", 3.0), f.not(f.eq("kommunekode", "national"))),
            f.match(arg.startswith(arg.property("question"), arg.literal("q1")))));
    URI filtered = client.newURIBuilder(root).appendEntitySetSegment(SET).filter(nested).orderBy("id").build();
    out.put("filter_uri", filtered.toString());
    out.put("filtered", ids(entities(client, filtered, token), type));

    // /$count with the same filter, and $count=true on a page.
    URI counted = client.newURIBuilder(root).appendEntitySetSegment(SET).filter(nested).appendCountSegment().build();
    ODataValueRequest countRequest = client.getRetrieveRequestFactory().getValueRequest(counted);
    authorize(countRequest, token);
    out.put("count", Integer.parseInt(countRequest.execute().getBody().toString()));
    URI paged = client.newURIBuilder(root).appendEntitySetSegment(SET).filter(nested).count(true).top(1).build();
    ODataEntitySetRequest<ClientEntitySet> pagedRequest = client.getRetrieveRequestFactory().getEntitySetRequest(paged);
    authorize(pagedRequest, token);
    out.put("inline_count", pagedRequest.execute().getBody().getCount());

    // Key lookup: the first of the sorted rows, by its key (Olingo writes a key as given: a level's
    // spaces are percent-encoded here, as a URL needs).
    @SuppressWarnings("unchecked")
    String firstId = ((List<String>) out.get("sorted_top")).get(0);
    URI byKey = client.newURIBuilder(root).appendEntitySetSegment(SET).appendKeySegment(URLEncoder.encode(firstId, StandardCharsets.UTF_8).replace("+", "%20")).build();
    ODataEntityRequest<ClientEntity> keyRequest = client.getRetrieveRequestFactory().getEntityRequest(byKey);
    authorize(keyRequest, token);
    ClientEntity entity = keyRequest.execute().getBody();
    checkTypes(entity, type);
    Map<String, Object> keyed = new LinkedHashMap<>();
    keyed.put("id", entity.getProperty("id").getPrimitiveValue().toCastValue(String.class));
    ClientProperty mean = entity.getProperty("mean");
    keyed.put("mean", mean.hasNullValue() ? null : mean.getPrimitiveValue().toCastValue(Double.class));
    out.put("by_key", keyed);

    // An option the service does not implement is refused (501), a bad filter is a 400: both with
    // an OData error body (Olingo parses the 4xx one into its ODataError).
    URI expanded = client.newURIBuilder(root).appendEntitySetSegment(SET).expand("Round").build();
    Map<String, Object> refused = new LinkedHashMap<>();
    try {
      entities(client, expanded, token);
      refused.put("status", 200);
    } catch (ODataServerErrorException e) {
      refused.put("status_line", e.getMessage());
      refused.put("body", new ObjectMapper().readTree(e.getRawResponse()).toString());
    }
    out.put("expand", refused);
    URI badFilter = client.newURIBuilder(root).appendEntitySetSegment(SET).filter(f.eq("no_such_column", 1)).build();
    Map<String, Object> bad = new LinkedHashMap<>();
    try {
      entities(client, badFilter, token);
      bad.put("status", 200);
    } catch (ODataClientErrorException e) {
      bad.put("status", e.getStatusLine().getStatusCode());
      bad.put("message", e.getODataError().getMessage());
      bad.put("target", e.getODataError().getTarget());
    }
    out.put("bad_filter", bad);

    System.out.println(new ObjectMapper().writeValueAsString(out));
  }

  private static void authorize(ODataBasicRequest<?> request, String token) {
    request.addCustomHeader("Authorization", "Bearer " + token);
  }

  private static List<ClientEntity> entities(ODataClient client, URI uri, String token) {
    ODataEntitySetRequest<ClientEntitySet> request = client.getRetrieveRequestFactory().getEntitySetRequest(uri);
    authorize(request, token);
    return request.execute().getBody().getEntities();
  }

  private static List<String> ids(List<ClientEntity> entities, EdmEntityType type) throws Exception {
    List<String> out = new ArrayList<>();
    for (ClientEntity entity : entities) {
      checkTypes(entity, type);
      out.add(entity.getProperty("id").getPrimitiveValue().toCastValue(String.class));
    }
    return out;
  }

  /** Every value of the entity is a valid literal of its property's type in $metadata. */
  private static void checkTypes(ClientEntity entity, EdmEntityType type) throws Exception {
    for (ClientProperty property : entity.getProperties()) {
      EdmProperty declared = type.getStructuralProperty(property.getName());
      if (declared == null) {
        throw new IllegalStateException("property not in $metadata: " + property.getName());
      }
      if (property.hasNullValue()) {
        if (!declared.isNullable()) {
          throw new IllegalStateException("null in a non-nullable property: " + property.getName());
        }
        continue;
      }
      EdmPrimitiveType primitive = (EdmPrimitiveType) declared.getType();
      String literal = property.getPrimitiveValue().toString();
      if (!primitive.validate(literal, declared.isNullable(), null, null, null, true)) {
        throw new IllegalStateException(property.getName() + "=" + literal + " is no " + primitive.getFullQualifiedName());
      }
    }
  }

  private static int describedProperties(EdmEntityType type) {
    int described = 0;
    for (String name : type.getPropertyNames()) {
      if (!type.getStructuralProperty(name).getAnnotations().isEmpty()) {
        described++;
      }
    }
    return described;
  }
}
